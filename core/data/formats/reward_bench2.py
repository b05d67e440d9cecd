"""RewardBench 2 (``allenai/reward-bench-2``, split ``test``) -> normalised pairs.

Record (the hub dataset's columns): ``id`` (string; ``ref:<n>`` / ``tied:<n>`` in Ties),
``prompt`` (string), ``chosen`` (list of strings: the correct completions, one outside Ties),
``rejected`` (list of strings: the incorrect ones, three outside Ties), ``num_correct``,
``num_incorrect``, ``total_completions`` (their lengths and sum), ``models``, ``subset``
(Factuality, Precise IF, Math, Safety, Focus, Ties) and ``additional_metadata``.

A record becomes every pair ``(chosen[i], rejected[j])`` (each correct completion preferred to
each incorrect one), with id ``<record id>/c<i>-r<j>``: the prompt id and each completion's
position survive the schema, so :mod:`core.eval.rewardbench2` rebuilds the record's completions in
the official order (``chosen + rejected``, as ``rewardbench.utils.load_bon_dataset_v2`` unrolls
them) and scores each completion once. ``source`` = ``domain`` = the subset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.data.formats._common import RecordContext, as_text, require
from core.data.schema import RowError

OPTIONS: frozenset[str] = frozenset()
HUB_SPLIT = "test"

#: the official Ties ids: ``ref:<n>`` (a reference prompt, one correct answer) and ``tied:<n>``
#: (the same question with several correct answers) — ``rewardbench.utils.process_single_model``
TIES_ID = re.compile(r"^(?P<kind>ref|tied):(?P<prompt>[0-9]+)$")
#: a pair's id: the record's id, then the positions of its chosen and rejected completions
PAIR_ID = re.compile(r"^(?P<record>.+)/c(?P<i>[0-9]+)-r(?P<j>[0-9]+)(?P<dup>#[0-9]+)?$")


def is_ties(subset: str) -> bool:
    """The official test of the Ties subset (``scripts/run_v2.py``: ``subset.lower() == "ties"``)."""
    return subset.lower() == "ties"


def pair_id(record_id: str, i: int, j: int) -> str:
    """The id of the pair (chosen[i], rejected[j]) of record ``record_id``."""
    return f"{record_id}/c{i}-r{j}"


def _completions(value: Any, key: str) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise RowError(f"field '{key}' must be a list of strings, got {type(value).__name__}")
    if not value:
        raise RowError(f"field '{key}' must hold at least one completion, got an empty list")
    return [as_text(v, f"{key}[{k}]") for k, v in enumerate(value)]


def _count(record: Mapping[str, Any], key: str, expected: int, what: str) -> None:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int) or value != expected:
        raise RowError(f"field '{key}' is {value!r} but the record has {expected} {what}")


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """One RewardBench 2 record -> its ``len(chosen) * len(rejected)`` pairs."""
    record_id, prompt, chosen, rejected, subset = require(record, "id", "prompt", "chosen", "rejected", "subset")
    require(record, "num_correct", "num_incorrect", "total_completions")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    record_id, subset, prompt = as_text(record_id, "id"), as_text(subset, "subset"), as_text(prompt, "prompt")
    chosen, rejected = _completions(chosen, "chosen"), _completions(rejected, "rejected")
    _count(record, "num_correct", len(chosen), "chosen completions")
    _count(record, "num_incorrect", len(rejected), "rejected completions")
    _count(record, "total_completions", len(chosen) + len(rejected), "completions")
    if is_ties(subset):
        m = TIES_ID.match(record_id)
        if m is None:
            raise RowError(f"field 'id' of a Ties record must be 'ref:<n>' or 'tied:<n>', got {record_id!r}")
        if m["kind"] == "tied" and len(chosen) < 2:
            raise RowError(f"field 'chosen' of Ties record {record_id!r} needs at least 2 correct completions")
    return [
        {
            "id": pair_id(record_id, i, j),
            "prompt": prompt,
            "chosen": good,
            "rejected": bad,
            "source": subset,
            "domain": subset,
        }
        for i, good in enumerate(chosen)
        for j, bad in enumerate(rejected)
    ]
