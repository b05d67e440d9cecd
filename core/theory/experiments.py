"""The registry of theory experiments (docs/theory.md): each name's runner, plotter, default
config and the paper statement it checks; the workflow's ``theory`` rules iterate over it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from core.theory.bandit import DEFAULT_BANDIT, plot_bandit_closure, run_bandit_closure
from core.theory.bow_dpo import (
    DEFAULT_BOW_DEGENERATION,
    plot_bow_degeneration,
    run_bow_degeneration,
)
from core.theory.dr_dpo import DEFAULT_ALG3_DPO, plot_alg3_dpo, run_alg3_dpo
from core.theory.linear_reward import (
    DEFAULT_ALG1_BATCH,
    DEFAULT_ALG1_RATE,
    DEFAULT_ALG1_SHIFT,
    plot_alg1_batch,
    plot_alg1_rate,
    plot_alg1_shift,
    run_alg1_batch,
    run_alg1_rate,
    run_alg1_shift,
)
from core.theory.robust_npg import DEFAULT_ALG2_NPG, plot_alg2_npg, run_alg2_npg


class Experiment(NamedTuple):
    """One theory experiment: its runner, its plotter, its default config and what it checks."""

    run: Callable[[dict[str, Any] | None, int], dict[str, Any]]
    plot: Callable[[dict[str, Any], str], None]
    defaults: dict[str, Any]
    checks: str


EXPERIMENTS: dict[str, Experiment] = {
    "alg1_rate": Experiment(
        run_alg1_rate, plot_alg1_rate, DEFAULT_ALG1_RATE, "DR paper Alg. 1 / Theorem 1: O(1/sqrt T)"
    ),
    "alg1_batch": Experiment(
        run_alg1_batch, plot_alg1_batch, DEFAULT_ALG1_BATCH, "DR paper Lemma 1: O(sqrt(log n / n)) minibatch bias"
    ),
    "alg1_shift": Experiment(
        run_alg1_shift, plot_alg1_shift, DEFAULT_ALG1_SHIFT, "DR paper Alg. 1: ERM vs DR on a shifted target"
    ),
    "alg2_npg": Experiment(
        run_alg2_npg, plot_alg2_npg, DEFAULT_ALG2_NPG, "DR paper Alg. 2 / Theorem 2: linear convergence"
    ),
    "alg3_dpo": Experiment(run_alg3_dpo, plot_alg3_dpo, DEFAULT_ALG3_DPO, "DR paper Alg. 3 / Theorem 3: O(1/sqrt T)"),
    "bandit_closure": Experiment(
        run_bandit_closure, plot_bandit_closure, DEFAULT_BANDIT, "distillation paper Prop. 7 / Fig. B.2"
    ),
    "bow_degeneration": Experiment(
        run_bow_degeneration,
        plot_bow_degeneration,
        DEFAULT_BOW_DEGENERATION,
        "distillation paper Props. 1-3, 5-6, Cor. 1",
    ),
}


__all__ = ["EXPERIMENTS", "Experiment"]
