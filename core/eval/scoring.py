"""Pure scoring helpers shared by every evaluation: the tie rule and grouped accuracies.

A pairwise comparison is *correct* when ``s(x, y+) > s(x, y-)`` (strict, as RewardBench's official
``run_rm.py`` / ``run_dpo.py``: ``1 if chosen > rejected else 0``).  Ties count as wrong by default;
``ties="half"`` gives them half credit (the documented option).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

__all__ = [
    "TIE_RULES",
    "GroupedScores",
    "accuracy",
    "group_counts",
    "grouped_accuracy",
    "pairwise_outcomes",
    "weighted_average",
]

TIE_RULES = ("wrong", "half")


def pairwise_outcomes(
    score_chosen: Sequence[float] | np.ndarray,
    score_rejected: Sequence[float] | np.ndarray,
    ties: str = "wrong",
) -> np.ndarray:
    """Per-example credit: 1 where ``chosen > rejected``, 0 where ``<``, and 0 (``ties="wrong"``)
    or 0.5 (``ties="half"``) where the two scores are exactly equal."""
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}")
    c = np.asarray(score_chosen, dtype=np.float64).reshape(-1)
    r = np.asarray(score_rejected, dtype=np.float64).reshape(-1)
    if c.shape != r.shape:
        raise ValueError(f"score_chosen has {c.size} entries but score_rejected has {r.size}")
    bad = np.flatnonzero(~(np.isfinite(c) & np.isfinite(r)))
    if bad.size:
        raise ValueError(f"non-finite scores at example indices {bad[:10].tolist()}")
    tie_credit = 0.5 if ties == "half" else 0.0
    return np.where(c > r, 1.0, np.where(c < r, 0.0, tie_credit))


def accuracy(correct: Sequence[float] | np.ndarray) -> float:
    """Mean credit over examples (NaN for an empty set)."""
    arr = np.asarray(correct, dtype=np.float64).reshape(-1)
    return float(arr.mean()) if arr.size else float("nan")


def _check_lengths(groups: Sequence[Hashable], correct: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(correct, dtype=np.float64).reshape(-1)
    if len(groups) != arr.size:
        raise ValueError(f"{len(groups)} group labels but {arr.size} per-example scores")
    return arr


def grouped_accuracy(groups: Sequence[Hashable], correct: Sequence[float] | np.ndarray) -> dict[Hashable, float]:
    """Accuracy per group label, ``acc_g = mean_{i: g_i = g} correct_i`` (groups in first-seen order)."""
    arr = _check_lengths(groups, correct)
    sums: dict[Hashable, float] = {}
    counts: dict[Hashable, int] = {}
    for g, c in zip(groups, arr, strict=True):
        sums[g] = sums.get(g, 0.0) + float(c)
        counts[g] = counts.get(g, 0) + 1
    return {g: sums[g] / counts[g] for g in sums}


def group_counts(groups: Sequence[Hashable]) -> dict[Hashable, int]:
    """Number of examples per group label (first-seen order)."""
    counts: dict[Hashable, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    return counts


def weighted_average(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``sum_k w_k v_k / sum_k w_k`` over keys whose value is present and finite (NaN if none)."""
    num = 0.0
    den = 0.0
    for key, w in weights.items():
        v = values.get(key)
        if v is None or not np.isfinite(v):
            continue
        num += w * float(v)
        den += w
    return num / den if den > 0 else float("nan")


class GroupedScores:
    """Base of the per-group score dataclasses (HHH subsets, MT-Bench turns): ``to_dict()`` for a
    metrics file and ``columns()``, a flat table row of the per-group accuracies (the field named
    by ``GROUPS``) followed by the pooled ``overall``."""

    GROUPS: str  # set by each subclass, e.g. "subsets"
    overall: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def columns(self) -> dict[str, float]:
        return {**getattr(self, self.GROUPS), "overall": self.overall}
