"""Theory experiments (docs/design.md §1.4): small, exact, CPU-only checks of the two papers' claims.

Every experiment has ``run_<name>(config, seed) -> dict`` (a tidy ``table`` DataFrame and a
``summary`` of JSON-able scalars), ``plot_<name>(result, path)`` (an atomically written PNG) and a
JSON-able default config.  ``EXPERIMENTS`` (core.theory.experiments) maps each name to them; the workflow's ``theory``
rules iterate over it.  See docs/theory.md.
"""

from __future__ import annotations

from core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    "core.theory",
    {
        "experiments": "EXPERIMENTS Experiment",
        "common": "save_result write_table",
        "bandit": "DEFAULT_BANDIT plot_bandit_closure run_bandit_closure",
        "bow_dpo": "DEFAULT_BOW_DEGENERATION plot_bow_degeneration run_bow_degeneration",
        "dr_dpo": "DEFAULT_ALG3_DPO plot_alg3_dpo run_alg3_dpo",
        "linear_reward": "DEFAULT_ALG1_BATCH DEFAULT_ALG1_RATE DEFAULT_ALG1_SHIFT plot_alg1_batch plot_alg1_rate "
        "plot_alg1_shift run_alg1_batch run_alg1_rate run_alg1_shift",
        "robust_npg": "DEFAULT_ALG2_NPG plot_alg2_npg run_alg2_npg",
    },
)
