"""The project's vocabulary: every word a config, a path, a trainer or a table uses for a method.

One definition each; the config schema's enums, the workflow's wildcard constraints, the trainers'
checks and the report's labels all read these (tests/test_vocab.py checks the schema against them).
Config words are the trainers' words: nothing is renamed between layers.
"""

from __future__ import annotations

#: Balls of the worst-case reweighting (DR paper eq. 3; docs/design.md §1.1); "none" = uniform.
DIVERGENCES: tuple[str, ...] = ("none", "tv", "chi2", "kl", "cvar")

#: DR-PPO variants (DR paper §5.2): "none" = standard PPO, "vA" scales advantages, "vB" the loss.
PPO_VERSIONS: tuple[str, ...] = ("none", "vA", "vB")

#: Preference losses of the DPO family (DR paper Alg. 3; distillation paper eqs. 7, 11, 13).
LOSS_TYPES: tuple[str, ...] = ("dpo", "ipo", "ddpo", "pdpo", "dpdpo", "edpo")
#: Losses that regress on offline target rewards r_tgt (distillation paper eqs. 7, 11, e-DPO).
DISTILLED_LOSS_TYPES: tuple[str, ...] = ("ddpo", "dpdpo", "edpo")
#: Losses with the pessimistic forward-KL term gamma KL(pi_ref || pi) (eqs. 11, 13).
PESSIMISTIC_LOSS_TYPES: tuple[str, ...] = ("pdpo", "dpdpo", "edpo")

#: Schedules of the pessimism coefficient gamma; "none" marks a loss without the KL term.
GAMMA_SCHEDULES: tuple[str, ...] = ("linear", "constant")
NO_GAMMA = "none"

#: Estimators of the forward KL(pi_ref || pi).
FORWARD_KL_ESTIMATORS: tuple[str, ...] = ("dataset", "ref_samples")

#: Iterate averaging of the robust trainers (DR paper Alg. 1 and 3, line 8).
AVERAGE_ITERATES: tuple[str, ...] = ("none", "uniform", "ema")

#: Benchmarks a DR-paper table can report ("id" = the variant's own held-out test split).
BENCHMARKS: tuple[str, ...] = ("id", "rewardbench", "hhh", "mtbench", "rewardbench2")

#: RewardBench 2's six subsets (allenai/reward-bench-2, the ``subset`` column), in the leaderboard's order.
REWARDBENCH2_SUBSETS: tuple[str, ...] = ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties")

#: RewardBench's four sections and their official subsets (allenai/reward-bench).
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "Safety": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}

#: How the report names each method and divergence.
METHOD_LABELS: dict[str, str] = {
    "dpo": "DPO",
    "ipo": "IPO",
    "ddpo": "d-DPO",
    "pdpo": "p-DPO",
    "dpdpo": "dp-DPO",
    "edpo": "e-DPO",
}
DIVERGENCE_LABELS: dict[str, str] = {"tv": "TV dist.", "chi2": "χ² dist.", "kl": "KL div.", "cvar": "CVaR"}
GAMMA_LABELS: dict[str, str] = {"linear": "with annealing", "constant": "w/o annealing"}
