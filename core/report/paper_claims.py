"""Every claim of both papers and every sanity gate, each declared once: what the paper says and
its number, and what it compares (a comparison class below), which the workflow's plan
(core.plan.claim_plan) turns into the metrics files of a config (core.report.spec_types cells) and
core.report.claims into a verdict.
Adding a claim is one entry in :data:`CLAIMS`; a gate, one in :data:`GATES`. Pure data: importable
without numpy, pandas or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLAIMS",
    "GATES",
    "BeatsReferences",
    "Claim",
    "Converged",
    "DistilledVsDirect",
    "Gate",
    "LargestVsSmallestRho",
    "PlainAdvantage",
    "ProbeVsDPO",
    "RobustVsPlain",
    "SelectedAdvantage",
    "TheorySlope",
    "TheoryValue",
]


# ------------------------------------------------------------ what a claim or gate compares
# Each claim (and gate) names its comparison with one of these; the workflow's plan
# (core.plan.claim_plan) turns it into the metrics files of a config, so adding a claim is one entry
# in CLAIMS (a gate: one in GATES).
@dataclass(frozen=True)
class RobustVsPlain:
    """The DR row of ``family`` (``rm``: TV; ``dpo``, ``ppo`` vA: the config's divergence), rho
    chosen on validation accuracy, against its non-robust row on the claim's benchmark, paired by
    seed (``oracle_id``/``oracle_ood``: PPO judged by the oracle reward of its samples)."""

    family: str


@dataclass(frozen=True)
class LargestVsSmallestRho:
    """The reward model at the largest rho of ``divergence``'s grid against the smallest (BTL,
    rho 0, when the grid has one rho) on the claim's benchmark, paired by seed."""

    divergence: str


@dataclass(frozen=True)
class TheorySlope:
    """A theory experiment's log-log slope of suboptimality against T, for equivalence with
    ``claimed`` within ``margin`` (bootstrap over replicates)."""

    experiment: str
    claimed: float
    margin: float


@dataclass(frozen=True)
class TheoryValue:
    """A theory experiment's summary number ``key`` against ``reference`` (or ``reference_key``)."""

    experiment: str
    key: str
    reference: float | None = None
    reference_key: str | None = None


@dataclass(frozen=True)
class DistilledVsDirect:
    """Each ``treated`` method against each ``baselines`` method (beta chosen on validation), at
    every length bias at least ``min_distance`` from 0.5: oracle advantage on the test split."""

    treated: tuple[str, ...]
    baselines: tuple[str, ...]
    min_distance: float = 0.25


@dataclass(frozen=True)
class ProbeVsDPO:
    """Each ``treated`` method's preferred log-likelihood at the end of training against DPO's,
    at Figure B.1's bias and beta."""

    treated: tuple[str, ...]


@dataclass(frozen=True)
class BeatsReferences:
    """Gate: the BTL reward model's seed-mean in-distribution accuracy above every reference row."""

    references: tuple[str, ...]


@dataclass(frozen=True)
class SelectedAdvantage:
    """Gate: ``method`` (beta chosen on validation) at the length bias nearest 0.5 improves the
    oracle reward over SFT (seed-mean advantage above 0)."""

    method: str


@dataclass(frozen=True)
class PlainAdvantage:
    """Gate: standard PPO's samples beat pi_ref's in oracle reward in distribution (seed mean > 0)."""


@dataclass(frozen=True)
class Converged:
    """Gate: the seed-mean validation loss of ``family`` (``rm``, ``dpo``, ``distill``) flattened
    before its budget (core.report.convergence)."""

    family: str


@dataclass(frozen=True)
class Gate:
    """A sanity gate: what it checks and how; a claim resting on a failed gate is flagged."""

    name: str
    text: str
    measure: Any


@dataclass(frozen=True)
class Claim:
    """One claim of a paper (the registry's entries; the numbers are the paper's) and what it
    compares (``measure``; None for a claim measured only on real text, core.report.real)."""

    id: str
    paper: str
    says: str
    paper_number: str
    metric: str
    baseline: str
    treatment: str
    benchmark: str
    direction: int = 1  # +1: the paper reports treatment > baseline; -1: treatment < baseline
    refs: tuple[str, ...] = ()  # tables / figures of the report it rests on
    gates: tuple[str, ...] = ()  # sanity gates it rests on
    measure: Any = None  # what it compares: one of the comparison classes above


DR, DIST = "DR-RLHF", "distillation"
_RM, _DPO, _PPO = "BTL RM", "Std. DPO", "BTL RM, Std. PPO"
_SEL = "ρ by validation"
CLAIMS: tuple[Claim, ...] = (
    Claim("a1", DR, "DR reward model beats BTL out of distribution", "Table 1: RewardBench avg BTL 71.8 vs "
          "TV rho=0.4 74.7", "accuracy (%)", _RM, f"DR RM (TV, {_SEL})", "rewardbench", refs=("table1",),
          gates=("btl_learned",),
          measure=RobustVsPlain("rm")),
    Claim("a2", DR, "DR reward model beats BTL out of distribution", "Table 8 (unfiltered): HHH BTL 83.3 vs DR "
          "81.0-83.8 (mixed)", "accuracy (%)", _RM, f"DR RM (TV, {_SEL})", "hhh", refs=("table8",),
          gates=("btl_learned", "rm_converged"),
          measure=RobustVsPlain("rm")),
    Claim("a3", DR, "DR reward model beats BTL out of distribution", "Table 8 (unfiltered): MT-Bench BTL 72.7 "
          "vs DR 71.9-73.6", "accuracy (%)", _RM, f"DR RM (TV, {_SEL})", "mtbench", refs=("table8",),
          gates=("btl_learned", "rm_converged"),
          measure=RobustVsPlain("rm")),
    Claim("b1", DR, "DR-DPO beats DPO", "Table 6: in-distribution DPO 60.9 vs DR-DPO rho=0.8 65.6", "accuracy (%)",
          _DPO, f"DR DPO ({_SEL})", "id", refs=("table6",), gates=("dpo_converged",),
          measure=RobustVsPlain("dpo")),
    Claim("b2", DR, "DR-DPO beats DPO", "Table 6: HHH DPO 69.0 vs DR-DPO 56.5-70.8", "accuracy (%)", _DPO,
          f"DR DPO ({_SEL})", "hhh", refs=("table6",), gates=("dpo_converged",),
          measure=RobustVsPlain("dpo")),
    Claim("b3", DR, "DR-DPO beats DPO", "Table 6: MT-Bench DPO 61.2 vs DR-DPO 62.1-68.2", "accuracy (%)", _DPO,
          f"DR DPO ({_SEL})", "mtbench", refs=("table6",), gates=("dpo_converged",),
          measure=RobustVsPlain("dpo")),
    Claim("c1", DR, "DR-PPO vA beats PPO", "Table 3: in-distribution PPO 59.3 vs vA 59.4-61.4", "accuracy (%)",
          _PPO, f"DR PPO vA ({_SEL})", "id", refs=("table3",), gates=("btl_learned", "rm_converged", "ppo_learned"),
          measure=RobustVsPlain("ppo")),
    Claim("c2", DR, "DR-PPO vA beats PPO", "Table 3: HHH PPO 66.2 vs vA 66.7-69.0", "accuracy (%)", _PPO,
          f"DR PPO vA ({_SEL})", "hhh", refs=("table3",), gates=("btl_learned", "rm_converged", "ppo_learned"),
          measure=RobustVsPlain("ppo")),
    Claim("c3", DR, "DR-PPO vA beats PPO", "Table 3: MT-Bench PPO 59.8 vs vA 59.8-64.7", "accuracy (%)", _PPO,
          f"DR PPO vA ({_SEL})", "mtbench", refs=("table3",), gates=("btl_learned", "rm_converged", "ppo_learned"),
          measure=RobustVsPlain("ppo")),
    Claim("c4", DR, "DR-PPO vA beats PPO", "not reported (the paper scores likelihood accuracy; the world's "
          "oracle judges samples)", "oracle reward of samples, mean over domains", _PPO, f"DR PPO vA ({_SEL})",
          "oracle_id", refs=("table3_oracle",), gates=("btl_learned", "rm_converged", "ppo_learned"),
          measure=RobustVsPlain("ppo")),
    Claim("c5", DR, "DR-PPO vA beats PPO out of distribution", "not reported (the DR premise: robust under the "
          "prompt shift)", "oracle reward of samples, mean over domains", _PPO, f"DR PPO vA ({_SEL})", "oracle_ood",
          refs=("table3_oracle",), gates=("btl_learned", "rm_converged", "ppo_learned"),
          measure=RobustVsPlain("ppo")),
    Claim("h", DR, "chi-square DR with large rho degrades", "Table 11: RewardBench avg chi2 rho<=0.2 73.4-74.5 vs "
          "rho=0.4 56.5", "accuracy (%)", "DR RM (chi2, smallest rho; BTL if one)", "DR RM (chi2, largest rho)",
          "rewardbench", direction=-1, refs=("table11",), gates=("btl_learned", "rm_converged"),
          measure=LargestVsSmallestRho("chi2")),
    Claim("g1", DR, "Algorithm 1 converges as O(1/sqrt T)", "Theorem 1: 2/sqrt(T) + O(sqrt(log n / n))",
          "log-log slope of suboptimality vs T (claimed -1/2, margin 0.1)", "claimed slope -1/2", "fitted slope",
          "theory", refs=("theory_alg1_rate",),
          measure=TheorySlope("alg1_rate", -0.5, 0.1)),
    Claim("g2", DR, "Algorithm 2 (robust NPG) converges linearly", "Theorem 2: contraction 1 - eta beta q_min < 1",
          "1 - fitted contraction factor", "contraction 1", "fitted contraction", "theory", -1,
          refs=("theory_alg2_npg",),
          measure=TheoryValue("alg2_npg", "metrics/summary/fitted_contraction", reference=1.0)),
    Claim("g3", DR, "Algorithm 3 (DR-DPO) converges with averaging", "Theorem 3: 2/sqrt(T) + O(sqrt(log n / n))",
          "log-log slope of suboptimality vs T (claimed -1/2, margin 0.1)", "claimed slope -1/2", "fitted slope",
          "theory", refs=("theory_alg3_dpo",),
          measure=TheorySlope("alg3_dpo", -0.5, 0.1)),
    Claim("d", DIST, "d-DPO and e-DPO beat DPO and IPO under strong length bias", "Figure 2: p < .01 (Wald) for "
          "bias <= 0.5 and > 0.6 (plot only)", "oracle advantage over SFT", "DPO / IPO (beta chosen on validation)",
          "d-DPO / e-DPO (beta chosen on validation)", "oracle", refs=("figure2", "figure2_wald"),
          gates=("policy_learned", "distill_converged"),
          measure=DistilledVsDirect(("ddpo", "edpo"), ("dpo", "ipo"))),
    Claim("e", DIST, "DPO drives the preferred likelihood down while d-/p-DPO keep it", "Figure B.1, Props. 2-3 "
          "(curves only)", "preferred log-likelihood at the end of training", "DPO", "p-DPO / d-DPO", "probes",
          refs=("figureB1",), gates=("distill_converged",),
          measure=ProbeVsDPO(("pdpo", "ddpo"))),
    Claim("f", DIST, "the transitive closure compresses IPO's solution and not p-DPO's", "Prop. 7: IPO spread "
          "ratio (n-1)/(2(n-1)/n) = 1.5 (n=3); p-DPO 'imperceptible'", "IPO spread ratio - p-DPO's", "p-DPO",
          "IPO", "theory", refs=("theory_bandit_closure",),
          measure=TheoryValue("bandit_closure", "metrics/summary/ipo_spread_ratio_min",
                              reference_key="metrics/summary/pdpo_max_spread_ratio")),
)  # fmt: skip

#: sanity gates by name, in the report's order: a claim resting on a failed gate is flagged
GATES: dict[str, Gate] = {g.name: g for g in (
    Gate("btl_learned", "the BTL reward model beats the random and longer-response references in distribution",
         BeatsReferences(("random", "longer"))),
    Gate("policy_learned", "the DPO policy (beta chosen on validation) improves the oracle reward over SFT",
         SelectedAdvantage("dpo")),
    Gate("ppo_learned", "standard PPO's samples beat pi_ref's in oracle reward in distribution (seed-mean "
         "advantage > 0)", PlainAdvantage()),
    Gate("rm_converged", "the BTL reward model's seed-mean validation loss flattened before its budget (1% rule)",
         Converged("rm")),
    Gate("dpo_converged", "the DPO policy's seed-mean validation loss flattened before its budget (1% rule)",
         Converged("dpo")),
    Gate("distill_converged", "the distillation DPO policy's seed-mean validation loss flattened before its budget",
         Converged("distill")),
)}  # fmt: skip
