"""The normalised preference schema (docs/design.md §2) and its row validation.

Every preference set in the project, whatever its origin, becomes rows with the columns
``id, prompt, chosen, rejected, source`` and the optional ``chosen_score, rejected_score,
domain, chosen_model, rejected_model, preference`` (``None`` where unknown: the models that wrote
the two responses and the source's raw verdict, e.g. AlpacaEval's ``preference``). ``prompt``,
``chosen`` and ``rejected`` are either strings or lists of chat messages ``{"role": str, "content":
str}``; within one dataset each of these columns holds one kind only. A pair states ``chosen`` is
preferred to ``rejected`` given ``prompt`` (the Bradley-Terry observation ``y+ > y- | x`` of both papers).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import datasets

REQUIRED_COLUMNS: tuple[str, ...] = ("id", "prompt", "chosen", "rejected", "source")
OPTIONAL_COLUMNS: tuple[str, ...] = ("chosen_score", "rejected_score", "domain")
#: optional columns that name who wrote a response (a model or generator name)
MODEL_COLUMNS: tuple[str, ...] = ("chosen_model", "rejected_model")
#: where a pair came from: its two responses' models and the source's raw verdict; a loaded set has
#: them (None where unknown), a set built by a stage may lack them
PROVENANCE_COLUMNS: tuple[str, ...] = (*MODEL_COLUMNS, "preference")
NORMALISED_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + PROVENANCE_COLUMNS
TEXT_COLUMNS: tuple[str, ...] = ("prompt", "chosen", "rejected")

Kind = Literal["text", "messages"]

MESSAGES_FEATURE = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})


#: a record's location as the readers write it: ``<file>, line 3`` (JSON lines), ``<file>, record 2``
#: (JSON array, parquet), ``<hub id>[name/split], row 5``, ``<task.json>, examples[0]`` (BIG-bench)
_LOCATION = re.compile(r"^(?P<file>.+), (?:(?P<unit>line|record|row) (?P<n>[0-9]+)|examples\[(?P<example>[0-9]+)\])$")


class RowError(ValueError):
    """A record that cannot become a valid preference pair; the loader adds file and row."""


@dataclass(frozen=True)
class BadRow:
    """One rejected record: where it is (file and row, or hub id and row) and why."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """``{"file", <position>, "reason"}``: the file (or hub id) and the record's position under
        the name its location uses: ``line`` (JSON lines, 1-based), ``record`` (JSON array or
        parquet, 1-based), ``row`` (hub, 1-based) or ``example`` (BIG-bench, 0-based)."""
        m = _LOCATION.match(self.location)
        if m is None:
            return {"file": self.location, "reason": self.reason}
        position = {m["unit"]: int(m["n"])} if m["unit"] else {"example": int(m["example"])}
        return {"file": m["file"], **position, "reason": self.reason}


@dataclass
class LoadReport:
    """What a load did: records read, pairs kept, ties dropped, bad rows dropped.

    ``n_ties`` counts records (or examples) dropped because neither side is preferred (equal
    ratings, MT-Bench ties, multiple-choice examples whose choices all score the same);
    ``n_skipped`` counts records that are not preference data at all (e.g. BIG-bench
    examples without ``target_scores``); ``bad_rows`` lists every dropped invalid record.
    """

    source: str
    format: str
    n_records: int = 0
    n_pairs: int = 0
    n_ties: int = 0
    n_skipped: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        """Number of bad rows dropped (``on_bad_rows='drop'``)."""
        return len(self.bad_rows)

    def common_reasons(self, n: int = 3) -> list[tuple[str, int]]:
        """The ``n`` most common reasons of the bad rows, with their counts (most common first)."""
        return Counter(b.reason for b in self.bad_rows).most_common(n)

    def to_dict(self) -> dict[str, Any]:
        """Flat numbers for logging (MLflow params/metrics)."""
        return {
            "source": self.source,
            "format": self.format,
            "n_records": self.n_records,
            "n_pairs": self.n_pairs,
            "n_ties": self.n_ties,
            "n_skipped": self.n_skipped,
            "n_dropped": self.n_dropped,
        }


class LoadError(ValueError):
    """A load refused: bad rows with ``on_bad_rows='error'``, more dropped rows than
    ``max_drop_fraction``, or no pair kept. ``report`` holds every bad row (file, row, reason)."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


def _has_undecodable(text: str) -> bool:
    """True when ``text`` holds lone surrogates, i.e. bytes that were not valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalise_messages(value: Any, what: str) -> list[dict[str, str]]:
    """Return ``value`` as a list of ``{role, content}`` dicts or raise RowError."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise RowError(f"{what} must be a list of {{role, content}} messages, got {type(value).__name__}")
    out: list[dict[str, str]] = []
    for i, msg in enumerate(value):
        if not isinstance(msg, Mapping):
            raise RowError(f"{what}[{i}] must be a {{role, content}} mapping, got {type(msg).__name__}")
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not role:
            raise RowError(f"{what}[{i}] has no 'role' string")
        if not isinstance(content, str):
            raise RowError(f"{what}[{i}] has no 'content' string")
        out.append({"role": role, "content": content})
    return out


def kind_of(value: Any) -> Kind:
    """``'text'`` for a string, ``'messages'`` for a message list."""
    return "text" if isinstance(value, str) else "messages"


def text_of(value: str | Sequence[Mapping[str, str]]) -> str:
    """The plain text of a string or of a message list (contents joined by newlines)."""
    if isinstance(value, str):
        return value
    return "\n".join(m["content"] for m in value)


def _is_empty(value: str | list[dict[str, str]]) -> bool:
    return not text_of(value).strip()


def _strings_of(row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for col in ("id", "source", "domain"):
        if isinstance(row.get(col), str):
            yield col, row[col]
    for col in TEXT_COLUMNS:
        value = row.get(col)
        if isinstance(value, str):
            yield col, value
        elif isinstance(value, list):
            for msg in value:
                yield col, msg["role"]
                yield col, msg["content"]


def check_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one row of the normalised schema and return it in canonical form.

    Raises RowError naming the problem: a missing field, a wrong type, an empty completion,
    ``chosen == rejected``, undecodable text (invalid UTF-8, seen as lone surrogates) or a
    non-finite score. Extra keys are dropped; missing optional columns become ``None``.
    """
    out: dict[str, Any] = {}
    for col in REQUIRED_COLUMNS:
        if row.get(col) is None:
            raise RowError(f"missing field '{col}'")
    for col in ("id", "source"):
        value = row[col]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise RowError(f"field '{col}' must be a non-empty string, got {value!r}")
        out[col] = value
    for col in TEXT_COLUMNS:
        value = row[col]
        out[col] = value if isinstance(value, str) else normalise_messages(value, f"field '{col}'")
    for col, text in _strings_of(out):
        if _has_undecodable(text):
            raise RowError(f"undecodable text in field '{col}' (bytes that are not valid UTF-8)")
    for col in ("chosen", "rejected"):
        if _is_empty(out[col]):
            raise RowError(f"empty completion in field '{col}'")
    if out["chosen"] == out["rejected"]:
        raise RowError("chosen == rejected")
    for col in ("chosen_score", "rejected_score", "preference"):
        value = row.get(col)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RowError(f"field '{col}' must be a number or null, got {value!r}")
            if not math.isfinite(value):
                raise RowError(f"field '{col}' must be finite, got {value!r}")
            value = float(value)
        out[col] = value
    domain = row.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise RowError(f"field 'domain' must be a string or null, got {domain!r}")
    if isinstance(domain, str) and _has_undecodable(domain):
        raise RowError("undecodable text in field 'domain' (bytes that are not valid UTF-8)")
    out["domain"] = domain
    for col in MODEL_COLUMNS:
        value = row.get(col)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise RowError(f"field '{col}' must be a non-empty string or null, got {value!r}")
        if isinstance(value, str) and _has_undecodable(value):
            raise RowError(f"undecodable text in field '{col}' (bytes that are not valid UTF-8)")
        out[col] = value
    return out


def preference_features(kinds: Mapping[str, Kind] | None = None) -> datasets.Features:
    """``datasets.Features`` of the normalised schema; ``kinds`` picks text or messages per
    prompt/chosen/rejected column (default text)."""
    kinds = dict(kinds or {})
    cols: dict[str, Any] = {"id": datasets.Value("string")}
    for col in TEXT_COLUMNS:
        kind = kinds.get(col, "text")
        if kind not in ("text", "messages"):
            raise ValueError(f"kind of column '{col}' must be 'text' or 'messages', got {kind!r}")
        cols[col] = datasets.Value("string") if kind == "text" else MESSAGES_FEATURE
    cols["source"] = datasets.Value("string")
    cols["chosen_score"] = datasets.Value("float64")
    cols["rejected_score"] = datasets.Value("float64")
    cols["domain"] = datasets.Value("string")
    for col in MODEL_COLUMNS:
        cols[col] = datasets.Value("string")
    cols["preference"] = datasets.Value("float64")
    return datasets.Features(cols)


def column_kinds(ds: datasets.Dataset) -> dict[str, Kind]:
    """Text or messages, per prompt/chosen/rejected column of a normalised dataset."""
    missing = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c not in ds.column_names]
    if missing:
        raise ValueError(f"dataset is not in the normalised schema: missing columns {missing}")
    return {col: "text" if ds.features[col] == datasets.Value("string") else "messages" for col in TEXT_COLUMNS}


def rows_to_dataset(rows: Sequence[Mapping[str, Any]], kinds: Mapping[str, Kind] | None = None) -> datasets.Dataset:
    """Build a normalised ``datasets.Dataset`` from already-checked rows (column order fixed)."""
    if kinds is None:
        kinds = {col: kind_of(rows[0][col]) for col in TEXT_COLUMNS} if rows else {}
    features = preference_features(kinds)
    columns = {col: [row.get(col) for row in rows] for col in NORMALISED_COLUMNS}
    return datasets.Dataset.from_dict(columns, features=features)
