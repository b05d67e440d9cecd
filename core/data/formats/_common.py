"""Helpers shared by the per-format converters."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.schema import LoadReport, RowError, normalise_messages


@dataclass
class RecordContext:
    """Where a record came from (location, file and folder, or hub config), the loader's options, and
    the report to count ties in."""

    location: str
    index: int
    path: Path | None
    report: LoadReport
    options: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = None
    hub_name: str | None = None


def require(record: Mapping[str, Any], *keys: str) -> list[Any]:
    """The values of ``keys`` in ``record``; RowError("missing field 'k'") for an absent/None one."""
    values = []
    for key in keys:
        if record.get(key) is None:
            raise RowError(f"missing field '{key}'")
        values.append(record[key])
    return values


def as_text(value: Any, key: str) -> str:
    """``value`` if it is a string, else RowError naming ``key``."""
    if not isinstance(value, str):
        raise RowError(f"field '{key}' must be a string, got {type(value).__name__}")
    return value


def as_number(value: Any, key: str) -> float:
    """``value`` as a float (int/float or a numeric string), else RowError naming ``key``."""
    if isinstance(value, bool):
        raise RowError(f"field '{key}' must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RowError(f"field '{key}' must be a number, got {value!r}") from None


def content_id(prefix: str, *parts: str) -> str:
    """A stable id from the content of a record (for formats that carry none)."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{prefix}-{digest[:16]}"


def split_conversations(
    a: Any, b: Any, what_a: str, what_b: str
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """Split two conversations into (shared prompt, rest of a, rest of b).

    The prompt is the longest common prefix of messages that leaves at least the last message
    on each side and ends on a non-assistant turn (so each completion starts with the turns
    the two sides differ on, e.g. ``[user] -> [assistant]`` for single-turn data).
    """
    ma = normalise_messages(a, f"field '{what_a}'")
    mb = normalise_messages(b, f"field '{what_b}'")
    if not ma or not mb:
        raise RowError(f"empty conversation in field '{what_a if not ma else what_b}'")
    limit = min(len(ma), len(mb)) - 1
    k = 0
    while k < limit and ma[k] == mb[k]:
        k += 1
    while k > 0 and ma[k - 1]["role"] == "assistant":
        k -= 1
    if k == 0:
        raise RowError(f"fields '{what_a}' and '{what_b}' share no prompt (their first messages differ)")
    return ma[:k], ma[k:], mb[k:]
