"""The typed specs of every table, figure, claim and gate: what the workflow's plan (core.plan)
produces from a config and core.report reads. A spec names metrics files and the JSON keys in
them, never a number. Pure data (importable without numpy, pandas or torch), and JSON-able through
:func:`to_data` / :func:`from_data`, the form a rule's params take to a job.

A table (:class:`Table`) is rows x columns; a :class:`Row` holds one cell spec per column label:

* :class:`SeedFiles` — one metrics file per seed; the value is the seed mean
  ``m = (1/n) sum_s v_s`` with the 95% Student-t interval ``m +- t_{.975, n-1} s / sqrt(n)``
  (``n > 1``), or with one file and the column's ``ci_keys`` the file's own (bootstrap) interval.
* :class:`Selection` — model selection over :class:`Candidate` settings (the distillation paper
  §6.1 picks beta on validation; the DR claims pick rho on validation): the candidate whose
  ``select`` files have the best seed mean of ``select_key`` is reported from its ``files``.
* :class:`Wald` — the p-value of the two-sided paired Wald test (distillation paper §6.2) of equal
  mean per-prompt oracle reward of its two sides, ``z = mean(a - b) / (sd(a - b) / sqrt(m))``.

A claim is measured on :class:`PairedCell` (treated minus baseline, paired by seed),
:class:`SlopeCell` (a theory rate's equivalence) or :class:`ExactCell` (a deterministic value);
a gate reads :class:`MeanAbove` or :class:`FlattensBefore`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

__all__ = [
    "Candidate",
    "CellSpec",
    "ClaimCell",
    "Column",
    "ExactCell",
    "FigureSpec",
    "FlattensBefore",
    "GateSpec",
    "MeanAbove",
    "PairedCell",
    "Row",
    "SeedFiles",
    "Selection",
    "Series",
    "SettingsTable",
    "SlopeCell",
    "Table",
    "Wald",
    "from_data",
    "to_data",
]


@dataclass(frozen=True)
class Column:
    """A table column: the JSON ``key`` its cells read (``a/b/c``), shown times ``scale`` with
    ``digits`` decimals; ``ci_keys`` a file's own interval; ``x`` its abscissa in a figure."""

    label: str
    key: str = ""
    scale: float = 1.0
    digits: int = 1
    ci_keys: tuple[str, str] | None = None
    x: float | None = None


@dataclass(frozen=True)
class SeedFiles:
    """A cell of one metrics file per seed, reduced to the seed mean (``key``: the column's unless set)."""

    files: tuple[str, ...]
    key: str | None = None

    def inputs(self) -> list[str]:
        return list(self.files)


@dataclass(frozen=True)
class Candidate:
    """One setting of a selection: ``select`` the files it is chosen on, ``files`` those reported."""

    label: str
    select: tuple[str, ...]
    files: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """The candidate with the largest (``minimize``: smallest) seed mean of ``select_key``."""

    candidates: tuple[Candidate, ...]
    select_key: str
    minimize: bool = False
    key: str | None = None

    def inputs(self) -> list[str]:
        return [f for c in self.candidates for f in (*c.select, *c.files)]


@dataclass(frozen=True)
class Wald:
    """The paired Wald test of the per-prompt values ``samples_key`` of two sides."""

    sides: tuple[SeedFiles | Selection, SeedFiles | Selection]
    samples_key: str

    def inputs(self) -> list[str]:
        return [f for s in self.sides for f in s.inputs()]


CellSpec = Union[SeedFiles, Selection, Wald]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class Row:
    """A table row: a cell spec per column label (a missing label is an empty cell)."""

    label: str
    cells: Mapping[str, CellSpec]
    group: str | None = None
    x: float | None = None


@dataclass(frozen=True)
class Table:
    """A table of numbers read from metrics files (core.report.tables)."""

    name: str
    title: str
    caption: str
    row_header: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    footnote: str | None = None

    def inputs(self) -> list[str]:
        """Every metrics file the table reads (its rule's inputs), sorted."""
        return sorted({f for r in self.rows for c in r.cells.values() for f in c.inputs()})


@dataclass(frozen=True)
class SettingsTable:
    """A table of settings read from the config (the papers' Tables 7 and 13)."""

    name: str
    title: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def inputs(self) -> list[str]:
        return []


@dataclass(frozen=True)
class Series:
    """A figure's series of per-seed ``train.json`` files; ``budget`` its step budget (None: epochs)."""

    label: str
    files: tuple[str, ...]
    budget: int | None = None


@dataclass(frozen=True)
class FigureSpec:
    """A figure (core.report.figures.FIGURE_KINDS): drawn from ``table`` or from ``series``."""

    name: str
    kind: str
    title: str = ""
    ylabel: str = ""
    table: Table | None = None
    series: tuple[Series, ...] = ()
    panels: tuple[str, ...] = ()

    def inputs(self) -> list[str]:
        if self.table is not None:
            return self.table.inputs()
        return sorted({f for s in self.series for f in s.files})


@dataclass(frozen=True)
class PairedCell:
    """A paired claim: ``direction * (treatment_s - baseline_s)`` of ``key`` (times ``scale``) per
    seed; ``degenerate`` the (file, flag key) pairs of the models it rests on."""

    id: str
    benchmark: str
    key: str
    baseline: SeedFiles | Selection
    treatment: SeedFiles | Selection
    scale: float = 1.0
    baseline_label: str | None = None
    treatment_label: str | None = None
    degenerate: tuple[tuple[str, str], ...] = ()

    def inputs(self) -> list[str]:
        return [*self.baseline.inputs(), *self.treatment.inputs(), *(f for f, _ in self.degenerate)]


@dataclass(frozen=True)
class SlopeCell:
    """A rate claim: ``margin - |slope - claimed|`` of log ``y`` vs log ``x`` in a theory table."""

    id: str
    table: str
    claimed: float
    margin: float
    x: str = "steps"
    y: str = "suboptimality"
    replicate: str = "replicate"
    seed: int = 0
    n_boot: int = 2000
    benchmark: str | None = None

    def inputs(self) -> list[str]:
        return [self.table]


@dataclass(frozen=True)
class ExactCell:
    """An exact claim: ``direction * (value - reference)`` of ``key`` in ``file``; the reference a
    number or another key of the same file."""

    id: str
    file: str
    key: str
    reference: float | None = None
    reference_key: str | None = None
    benchmark: str | None = None

    def inputs(self) -> list[str]:
        return [self.file]


ClaimCell = Union[PairedCell, SlopeCell, ExactCell]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class MeanAbove:
    """A gate: the seed mean of ``key`` in ``value`` exceeds every ``above`` file's (else ``threshold``)."""

    key: str
    value: SeedFiles | Selection
    above: tuple[str, ...] = ()
    threshold: float | None = None

    def inputs(self) -> list[str]:
        return [*self.value.inputs(), *self.above]


@dataclass(frozen=True)
class FlattensBefore:
    """A gate: the seed-mean validation loss of ``files`` flattened before ``budget`` (core.report.convergence)."""

    files: tuple[str, ...]
    budget: int | None = None

    def inputs(self) -> list[str]:
        return list(self.files)


GateSpec = Union[MeanAbove, FlattensBefore]  # noqa: UP007 (a runtime alias)

_TYPES = {cls.__name__: cls for cls in (Candidate, Column, ExactCell, FigureSpec, FlattensBefore, MeanAbove,
                                         PairedCell, Row, SeedFiles, Selection, Series, SettingsTable,
                                         SlopeCell, Table, Wald)}  # fmt: skip
_TAG = "__spec__"


def to_data(obj: Any) -> Any:
    """``obj`` as JSON-able data: a spec becomes a dict tagged with its type; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {_TAG: type(obj).__name__, **{f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, Mapping):
        return {k: to_data(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_data(v) for v in obj]
    return obj


def from_data(data: Any) -> Any:
    """The inverse of :func:`to_data` (lists come back as tuples); an unknown tag is refused."""
    if isinstance(data, Mapping):
        if _TAG not in data:
            return {k: from_data(v) for k, v in data.items()}
        name = data[_TAG]
        if name not in _TYPES:
            raise ValueError(f"spec of unknown type {name!r} (known: {sorted(_TYPES)})")
        return _TYPES[name](**{k: from_data(v) for k, v in data.items() if k != _TAG})
    if isinstance(data, list | tuple):
        return tuple(from_data(v) for v in data)
    return data
