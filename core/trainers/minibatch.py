"""Minibatch descent on a fixed set of examples with worst-case weights (DR paper Alg. 1 and 3).

Each step draws ``batch_size`` examples without replacement (seeded), takes their per-example
losses ``l_i``, solves the worst-case weights ``q`` of the minibatch in a TV or chi-square ball of
radius rho (core.dro; rho = 0 gives uniform weights, the plain mean) and steps the optimiser on
``sum_i q_i l_i`` (``q`` held fixed). Shared by the reward-model head on cached states
(core.trainers.feature_head) and the log-linear policies (core.trainers.loglinear).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["robust_minibatch_descent"]


def robust_minibatch_descent(
    n: int,
    per_example: Callable[[Any], Any],
    optimizer: Any,
    *,
    steps: int,
    batch_size: int,
    divergence: str,
    rho: float,
    seed: int,
    scheduler: Any = None,
    what: str = "training",
) -> list[float]:
    """Run ``steps`` steps; ``per_example(idx)`` returns the losses of the examples ``idx`` (a
    LongTensor). Returns the robust loss of every step; a non-finite one stops with
    core.trainers.guards.NonFiniteError."""
    import torch

    from core.dro import worst_case_weights
    from core.trainers.guards import NonFiniteError

    rng = np.random.default_rng(seed)
    losses: list[float] = []
    for step in range(steps):
        idx = torch.from_numpy(rng.choice(n, size=min(batch_size, n), replace=False))
        batch = per_example(idx)
        q = worst_case_weights(batch.detach(), divergence, rho)
        loss = (q * batch).sum()
        if not torch.isfinite(loss):
            raise NonFiniteError(f"{what}: non-finite loss at step {step}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.detach()))
    return losses
