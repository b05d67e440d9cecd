"""Evaluation (docs/design.md §3): pairwise accuracy of reward models and policies, RewardBench's
official scoring, HHH, MT-Bench, oracle-reward advantage with bootstrap intervals and Wald tests,
training-time likelihood probes, and metrics files.

Import from the submodule that holds a name (each lists its own ``__all__``); the package itself
re-exports only ``encode_example`` (core.lazy), so light users (tables, scoring) never pay for
torch/transformers:

* :mod:`core.eval.pairwise`    — ``reward_model_pairwise``, ``policy_pairwise``, ``PairwiseResult``
* :mod:`core.eval.encoding`    — the encoding rule of training and evaluation (chat template, or
  separated plain text)
* :mod:`core.eval.scoring`     — tie rule, grouped accuracies
* :mod:`core.eval.benchmarks`  — one benchmark's rows, scores and score spread (degeneracy)
* :mod:`core.eval.reference`   — the reference rows (longer response, random, oracle)
* :mod:`core.eval.rewardbench` — ``score_rewardbench`` and the official constants
* :mod:`core.eval.hhh`, :mod:`core.eval.mtbench` — ``score_hhh``, ``score_mtbench``
* :mod:`core.eval.generation`, :mod:`core.eval.oracle` — seeded sampling, ``oracle_advantage``,
  ``wald_test``, ``bootstrap_mean_ci``, ``load_oracle``
* :mod:`core.eval.probes`      — ``LikelihoodProbeCallback`` (Figure B.1)
* :mod:`core.eval.results`     — ``write_metrics``, ``load_metrics``, ``flatten``
"""

from __future__ import annotations

from core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports("core.eval", {"encoding": "encode_example"})
