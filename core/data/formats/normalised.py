"""The project's own normalised files (e.g. ``core.data.io.write_pairs`` output) -> rows, as they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.data.formats._common import RecordContext
from core.data.schema import NORMALISED_COLUMNS

OPTIONS: frozenset[str] = frozenset()
HUB_SPLIT = "train"


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """Keep the normalised columns of a record; the loader's row check validates them."""
    return [{col: record.get(col) for col in NORMALISED_COLUMNS}]
