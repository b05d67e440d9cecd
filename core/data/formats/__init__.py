"""Per-format converters: each module turns one raw record into normalised pairs.

A converter module has ``convert(record, ctx) -> list[dict]`` (zero pairs for a tie, counted
in ``ctx.report``; ``RowError`` for a malformed record), ``OPTIONS`` (the keyword options it
accepts) and ``HUB_SPLIT`` (the split loaded from the hub when none is given); optionally ``select(record, options,
path) -> bool``, the records its options keep (the others are not read).
"""

from __future__ import annotations

from types import ModuleType

import core.data.bigbench as bigbench
from core.data.formats import (
    alpaca_eval,
    hh_rlhf,
    hhh,
    mt_bench,
    normalised,
    reward_bench,
    reward_bench2,
    tldr,
    unified_feedback,
)

FORMATS: dict[str, ModuleType] = {
    "unified-feedback": unified_feedback,
    "reward-bench": reward_bench,
    "reward-bench-2": reward_bench2,
    "hhh": hhh,
    "mt-bench-human": mt_bench,
    "tldr": tldr,
    "hh-rlhf": hh_rlhf,
    "bigbench": bigbench,
    "alpaca-eval": alpaca_eval,
    "normalised": normalised,
}

__all__ = ["FORMATS"]
