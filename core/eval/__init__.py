"""Evaluation (docs/design.md §3): pairwise accuracy of reward models and policies, RewardBench's
official scoring, HHH, MT-Bench, oracle-reward advantage with bootstrap intervals and Wald tests,
training-time likelihood probes, and metrics files.

Names are imported lazily so that light users (tables, scoring) do not pay for torch/transformers:

* :mod:`core.eval.pairwise`    — ``reward_model_pairwise``, ``policy_pairwise``, ``PairwiseResult``
* :mod:`core.eval.encoding`    — the encoding rule (chat template vs plain concatenation)
* :mod:`core.eval.scoring`     — tie rule, grouped accuracies
* :mod:`core.eval.rewardbench` — ``score_rewardbench`` and the official constants
* :mod:`core.eval.hhh`, :mod:`core.eval.mtbench` — ``score_hhh``, ``score_mtbench``
* :mod:`core.eval.generation`, :mod:`core.eval.oracle` — seeded sampling, ``oracle_advantage``,
  ``wald_test``, ``bootstrap_mean_ci``
* :mod:`core.eval.probes`      — ``LikelihoodProbeCallback`` (Figure B.1)
* :mod:`core.eval.results`     — ``write_metrics``, ``load_metrics``
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "encoding": ("EncodedPairs", "EncodedSequence", "encode_completion", "encode_pairs", "encode_prompt"),
    "scoring": ("accuracy", "grouped_accuracy", "pairwise_outcomes"),
    "pairwise": (
        "PairLogProbs",
        "PairwiseResult",
        "SequenceLogProbs",
        "pair_logprobs",
        "policy_pairwise",
        "reward_model_pairwise",
        "score_sequences",
        "sequence_logprobs",
    ),
    "rewardbench": (
        "EXAMPLE_COUNTS",
        "SECTIONS",
        "RewardBenchScores",
        "map_subsets",
        "overall_score",
        "prior_sets_score",
        "score_rewardbench",
        "section_scores",
    ),
    "hhh": ("HHHScores", "score_hhh"),
    "mtbench": ("MTBenchScores", "score_mtbench"),
    "generation": ("GenerationSettings", "generate_completions"),
    "oracle": (
        "OracleAdvantage",
        "SampledRewards",
        "WaldTest",
        "bootstrap_mean_ci",
        "heldout_prompts",
        "load_oracle",
        "oracle_advantage",
        "reward_model_oracle",
        "sample_and_score",
        "score_with_oracle",
        "wald_test",
    ),
    "probes": ("LikelihoodProbeCallback", "ProbeSet", "build_probe_set", "compute_probes"),
    "results": ("config_hash", "load_metrics", "read_metrics", "write_metrics"),
    "benchmarks": ("benchmark_view", "evaluate_benchmark", "score_benchmark"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"core.eval.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'core.eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
