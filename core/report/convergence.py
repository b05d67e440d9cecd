"""Whether a training converged within its step budget, from its validation loss curve.

The rule (docs/claims.md, "The miniature", premise 2): **the budget is the step after which the
validation loss improves by less than 1% of its total decrease.**  On a logged curve
``(steps, values)`` with total decrease ``D = values[0] - min(values)``, the plateau step is the
first logged step ``s`` such that no later logged value is lower than the value at ``s`` by
``tol * D`` or more (``tol = 0.01``): the decrease still to come after ``s`` is under 1% of the
total.  A training converged at its budget when that step comes before the budget (the curve
flattened before the end), so it would not have gained more than 1% of its decrease by training on.

The rule reads the raw logged values.  Evaluation noise larger than ``tol * D`` delays the
plateau (to the first point that every later value stays within ``tol * D`` below), and a curve
whose lowest value is its last point never converges; smooth the curve first (e.g. the mean
over seeds) when the noise is larger than the 1% threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["convergence_summary", "family_convergence", "mean_curve", "plateau_step", "read_curve"]

TOLERANCE = 0.01


def _checked(steps: Sequence[int], values: Sequence[float]) -> tuple[list[int], list[float]]:
    if len(steps) != len(values):
        raise ValueError(f"curve has {len(steps)} steps but {len(values)} values")
    steps, values = [int(s) for s in steps], [float(v) for v in values]
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError(f"curve steps must increase strictly, got {steps}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"curve has a non-finite value: {values}")
    return steps, values


def plateau_step(steps: Sequence[int], values: Sequence[float], tol: float = TOLERANCE) -> int | None:
    """The first logged step after which the loss improves by less than ``tol`` of its total decrease.

    That is the first ``steps[i]`` with ``values[i] - min(values[i+1:]) < tol * (values[0] - min(values))``
    (the last step always qualifies).  None when the curve does not decrease (``min(values) >=
    values[0]``) or has fewer than 3 points.  ``ValueError`` for mismatched lengths, steps not
    strictly increasing, or a non-finite value.
    """
    if not 0.0 < tol < 1.0:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    steps, values = _checked(steps, values)
    if len(values) < 3:
        return None
    total = values[0] - min(values)
    if total <= 0.0:
        return None
    threshold = tol * total
    later_min = [math.inf] * len(values)  # later_min[i] = min(values[i+1:])
    for i in range(len(values) - 2, -1, -1):
        later_min[i] = min(later_min[i + 1], values[i + 1])
    for step, value, rest in zip(steps, values, later_min, strict=True):
        if value - rest < threshold:
            return step
    return steps[-1]  # unreachable: the last point has no later improvement


def convergence_summary(curve: Mapping[str, Sequence[Any]], budget: int, tol: float = TOLERANCE) -> dict[str, Any]:
    """The convergence verdict of one validation loss curve (``{"step": [...], "value": [...]}``,
    as in a metrics file's ``metrics.curves.eval_loss``) against the step ``budget``.

    Keys: ``plateau_step`` (:func:`plateau_step`), ``budget``, ``converged`` (a plateau step
    before the budget, confirmed by at least one later logged point: a curve that stops before the
    budget is not called converged on its last point alone), ``total_decrease`` (first value minus
    the minimum), ``final`` (last value) and ``min`` (None for an empty curve).
    """
    steps, values = _checked(curve["step"], curve["value"])
    plateau = plateau_step(steps, values, tol)
    converged = plateau is not None and plateau < int(budget) and plateau < steps[-1]
    return {
        "plateau_step": plateau,
        "budget": int(budget),
        "converged": converged,
        "total_decrease": values[0] - min(values) if values else 0.0,
        "final": values[-1] if values else None,
        "min": min(values) if values else None,
    }


def read_curve(path: str, key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of the step curve ``key`` in a train.json (``metrics/curves``)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    series = data.get("metrics", {}).get("curves", {})
    if key not in series:
        raise ValueError(f"metrics file {path}: no step curve {key!r} (have {sorted(series)})")
    return [int(s) for s in series[key]["step"]], [float(v) for v in series[key]["value"]]


def mean_curve(files: Sequence[str], key: str) -> tuple[list[int], list[float]]:
    """The seed mean of the step curve ``key`` of ``files``, on the steps they all logged."""
    curves = [read_curve(f, key) for f in files]
    steps = sorted(set(curves[0][0]).intersection(*[set(c[0]) for c in curves[1:]]))
    out = []
    for s in steps:
        vals = [c[1][c[0].index(s)] for c in curves]
        out.append(sum(vals) / len(vals))
    return steps, out


def family_convergence(files: Sequence[str], budget: int | None) -> dict[str, Any]:
    """:func:`convergence_summary` of the seed-mean validation-loss curve
    (``metrics/curves/eval_loss``) of one model family's ``train.json`` files; a budget of None
    (trained for epochs) is the curve's last step."""
    steps, values = mean_curve(files, "eval_loss")
    if not steps:
        raise ValueError(f"no common validation steps in {list(files)[:3]}")
    return convergence_summary({"step": steps, "value": values}, budget=int(budget or steps[-1]))
