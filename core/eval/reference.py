"""Reference rows of every benchmark table, so a reader can tell what an accuracy means.

* ``longer`` — "the longer response is preferred": correct when the chosen response has more
  characters than the rejected one (equal lengths follow ``eval.ties``); the length bias the
  distillation paper studies, as a rule;
* ``random`` — a fair coin per pair: its expected credit 0.5 on every pair (no sampling noise);
* ``oracle`` — the synthetic world's known reward r*(x, y) (configs whose oracle is exact): the
  ceiling a reward model can reach on labels drawn from a Bradley-Terry model of r*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.eval.scoring import pairwise_outcomes

__all__ = [
    "LENGTH_MATCHED_WITHIN",
    "REFERENCE_LABELS",
    "REFERENCE_RULES",
    "length_matched",
    "reference_correct",
    "response_lengths",
    "response_text",
]

#: pairs whose response lengths (characters) differ by less than this share of the longer one are
#: "length-matched": there the length rule is near chance and a reward model must use the content
LENGTH_MATCHED_WITHIN = 0.2

REFERENCE_RULES: tuple[str, ...] = ("longer", "random", "oracle")
REFERENCE_LABELS: dict[str, str] = {
    "longer": "Reference: longer response preferred",
    "random": "Reference: random (expected)",
    "oracle": "Reference: oracle reward",
}


def response_text(response: Any) -> str:
    """The text of a response: a string, or the content of a message list's last message."""
    if isinstance(response, str):
        return response
    if isinstance(response, Sequence) and response and isinstance(response[-1], dict):
        return str(response[-1].get("content", ""))
    raise ValueError(f"a response must be a string or a list of messages, got {type(response).__name__}")


def response_lengths(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Characters of each pair's chosen and of its rejected response."""
    chosen = np.asarray([len(response_text(r)) for r in ds["chosen"]], dtype=float)
    rejected = np.asarray([len(response_text(r)) for r in ds["rejected"]], dtype=float)
    return chosen, rejected


def length_matched(ds: Any, within: float = LENGTH_MATCHED_WITHIN) -> np.ndarray:
    """Boolean mask of the pairs whose lengths differ by less than ``within`` of the longer one,
    ``|len(y+) - len(y-)| < within * max(len(y+), len(y-))``."""
    if not 0 < within <= 1:
        raise ValueError(f"within must be in (0, 1], got {within!r}")
    chosen, rejected = response_lengths(ds)
    return np.abs(chosen - rejected) < within * np.maximum(chosen, rejected)


def reference_correct(
    ds: Any, rule: str, ties: str = "wrong", oracle: Callable[[Sequence[Any], Sequence[Any]], Any] | None = None
) -> np.ndarray:
    """Per-pair credit of a reference rule on the rows of ``ds`` (prompt, chosen, rejected)."""
    if rule == "random":
        return np.full(len(ds), 0.5)
    if rule == "longer":
        return pairwise_outcomes(*response_lengths(ds), ties)
    if rule == "oracle":
        if oracle is None:
            raise ValueError("reference rule 'oracle' needs the oracle scorer")
        prompts = list(ds["prompt"])
        chosen = np.asarray(oracle(prompts, list(ds["chosen"])), dtype=float)
        rejected = np.asarray(oracle(prompts, list(ds["rejected"])), dtype=float)
        return pairwise_outcomes(chosen, rejected, ties)
    raise ValueError(f"unknown reference rule {rule!r} (known: {list(REFERENCE_RULES)})")
