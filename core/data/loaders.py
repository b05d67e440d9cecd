"""One loader for every preference format: ``load_preferences`` (docs/design.md §2).

``load_preferences(source, format, split=None, **options)`` reads a local file or folder
(``.jsonl``, ``.jsonl.gz``, ``.json``, ``.json.gz``, ``.parquet``; BIG-bench ``task.json``) or, when
no such path exists, a hub dataset id through ``datasets.load_dataset``; converts every record
with the format's converter (``core.data.formats``) and validates every resulting row
(``core.data.schema.check_row``). Bad rows are reported with their file and row; with
``on_bad_rows='error'`` (default) any bad row raises ValueError listing them, with ``'drop'``
they are dropped and counted, up to ``max_drop_fraction`` of the records read (default 5%): more
is an error naming the source and the most common reasons. A load that keeps no pair at all is
always an error. These errors are :class:`core.data.schema.LoadError`, whose ``report`` lists
every bad row. ``return_report=True`` returns ``(dataset, LoadReport)``; the report's
``n_dropped``, ``n_ties`` and ``n_skipped`` are the counts to log, ``bad_rows`` the dropped rows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

import core.data.bigbench as bigbench
from core.data.formats import FORMATS
from core.data.formats._common import RecordContext
from core.data.records import (
    SUFFIXES,
    Unreadable,
    file_kind,
    iter_file_records,
    list_data_files,
    split_matches,
)
from core.data.schema import (
    TEXT_COLUMNS,
    BadRow,
    LoadError,
    LoadReport,
    RowError,
    check_row,
    kind_of,
    rows_to_dataset,
)

log = logging.getLogger(__name__)

TASK_FORMATS = ("bigbench", "hhh")
MAX_LISTED_BAD_ROWS = 20
#: the share of a source's records ``on_bad_rows='drop'`` may drop (config ``data.max_drop_fraction``)
DEFAULT_MAX_DROP_FRACTION = 0.05
MOST_COMMON_REASONS = 3

# (location, index in its file, file path or None, source folder or None, hub config or None, record)
Located = tuple[str, int, Path | None, Path | None, str | None, Any]


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith(("/", "./", "../", "~"))
        or source.count("/") > 1
        or file_kind(Path(source)) is not None
        or source.endswith("task.json")
    )


def _local_records(path: Path, fmt: str, split: str | None, options: Mapping[str, Any]) -> Iterator[Located]:
    if fmt in TASK_FORMATS and (fmt == "bigbench" or bigbench.is_task_source(path)):
        if split is not None:
            raise ValueError(f"{path}: BIG-bench task.json files have no splits (got split={split!r})")
        root = path if path.is_dir() else None
        for location, index, record in bigbench.iter_task_records(path, options.get("tasks")):
            task = record.get("__task__") if isinstance(record, dict) else None
            yield location, index, task.path if task else None, root, None, record
        return
    if options.get("tasks") is not None:
        raise ValueError(f"{path}: option 'tasks' applies to BIG-bench task.json sources only")
    files = list_data_files(path, split) if path.is_dir() else [path]
    root = path if path.is_dir() else None
    by_name = split is not None and any(split_matches(f, split) for f in files)
    filter_field = split is not None and not by_name
    matched_field = False
    for file in files:
        for location, index, record in iter_file_records(file):
            if filter_field and isinstance(record, dict):
                if "split" not in record:
                    raise ValueError(
                        f"{location}: split={split!r} given, but no file under {path} is named after "
                        "it and this record has no 'split' field"
                    )
                if record["split"] != split:
                    continue
                matched_field = True
            yield location, index, file, root, None, record
    if filter_field and not matched_field:
        raise ValueError(f"{path}: no record has split == {split!r}")


def _hub_names(hub_name: str | Sequence[str] | None) -> list[str | None]:
    """The hub configs to load: one name, every name of a list (a source that expands to several
    configs, e.g. HHH's harmless, helpful, honest, other), or the default config."""
    if hub_name is None or isinstance(hub_name, str):
        return [hub_name]
    names = list(hub_name)
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"hub_name must be a config name or a list of distinct config names, got {hub_name!r}")
    return names


def _hub_records(
    source: str, fmt: str, split: str | None, hub_name: str | Sequence[str] | None, hub_kwargs: Mapping[str, Any]
) -> Iterator[Located]:
    if "trust_remote_code" in hub_kwargs:
        raise ValueError("hub_kwargs: trust_remote_code is never used by this project")
    if fmt == "bigbench":
        raise ValueError(
            f"{source}: format 'bigbench' reads local task.json files; get them with "
            "core.data.bigbench.fetch_bigbench_tasks()"
        )
    split = split or FORMATS[fmt].HUB_SPLIT
    for name in _hub_names(hub_name):
        ds = datasets.load_dataset(source, name, split=split, **hub_kwargs)
        for i, record in enumerate(ds):
            yield f"{source}[{name or 'default'}/{split}], row {i + 1}", i, None, None, name, record


def _records(
    source: str | os.PathLike[str],
    fmt: str,
    split: str | None,
    hub_name: str | Sequence[str] | None,
    hub_kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
) -> Iterator[Located]:
    path = Path(source).expanduser()
    if path.exists():
        if hub_name is not None or hub_kwargs:
            raise ValueError(f"{source}: hub_name/hub_kwargs apply to hub ids, not to local paths")
        return _local_records(path, fmt, split, options)
    if isinstance(source, os.PathLike) or _looks_like_path(str(source)):
        raise FileNotFoundError(
            f"{source}: no such file or folder (expected one of {', '.join(SUFFIXES)}, a folder of them, or a hub id)"
        )
    return _hub_records(str(source), fmt, split, hub_name, hub_kwargs)


def _dedupe_ids(rows: list[dict[str, Any]]) -> None:
    """Make ids unique: the 2nd, 3rd, ... row with an id gets ``id#2``, ``id#3``, ..."""
    used = {row["id"] for row in rows}
    seen: set[str] = set()
    for row in rows:
        base = row["id"]
        if base in seen:
            k = 2
            while f"{base}#{k}" in used:
                k += 1
            row["id"] = f"{base}#{k}"
            used.add(row["id"])
        seen.add(base)


def _bad_rows_error(report: LoadReport) -> LoadError:
    shown = "\n".join(f"  {b}" for b in report.bad_rows[:MAX_LISTED_BAD_ROWS])
    more = report.n_dropped - MAX_LISTED_BAD_ROWS
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return LoadError(
        f"{report.n_dropped} bad row(s) in {report.source} (format {report.format!r}); "
        f"fix them or pass on_bad_rows='drop':\n{shown}{tail}",
        report,
    )


def _reasons(report: LoadReport) -> str:
    """The most common reasons of the bad rows with their counts, and where the first one is."""
    if not report.bad_rows:
        return ""
    common = "; ".join(f"{count} x {reason}" for reason, count in report.common_reasons(MOST_COMMON_REASONS))
    return f"; most common reasons: {common} (first at {report.bad_rows[0].location})"


def _check_kept(report: LoadReport, max_drop_fraction: float) -> None:
    """Refuse a load that dropped more than ``max_drop_fraction`` of its records, or kept no pair."""
    if report.n_dropped > max_drop_fraction * report.n_records:
        raise LoadError(
            f"{report.source} (format {report.format!r}): {report.n_dropped} of {report.n_records} records "
            f"are bad rows ({report.n_dropped / report.n_records:.1%}), more than max_drop_fraction "
            f"{max_drop_fraction:g}{_reasons(report)}",
            report,
        )
    if report.n_pairs == 0:
        raise LoadError(
            f"{report.source} (format {report.format!r}): no preference pair kept from {report.n_records} "
            f"record(s) ({report.n_dropped} bad, {report.n_ties} ties, {report.n_skipped} skipped){_reasons(report)}",
            report,
        )


def _check_fraction(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"max_drop_fraction must be a number in [0, 1], got {value!r}")


def load_preferences(
    source: str | os.PathLike[str],
    format: str,
    split: str | None = None,
    *,
    on_bad_rows: str = "error",
    max_drop_fraction: float = DEFAULT_MAX_DROP_FRACTION,
    return_report: bool = False,
    hub_name: str | Sequence[str] | None = None,
    hub_kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> datasets.Dataset | tuple[datasets.Dataset, LoadReport]:
    """Load a preference set in the normalised schema (``core.data.schema``).

    ``format``: unified-feedback, reward-bench, reward-bench-2, hhh, mt-bench-human, tldr, hh-rlhf, bigbench,
    alpaca-eval or normalised. ``split``: for a folder, the files named after it (``train.jsonl.gz``,
    ``test-0000.parquet``), else records whose ``split`` field equals it; for a hub id, the split
    to load (default per format). ``hub_name``: the hub config (e.g. ``harmless`` for HHH,
    ``all`` for Unified-Feedback), or a list of configs loaded one after the other into one set
    (``["harmless", "helpful", "honest", "other"]``: all of HHH, each row's subset its config);
    ``hub_kwargs``: more ``datasets.load_dataset`` arguments (e.g.
    ``{"data_dir": "harmless-base"}`` for HH). Options: ``tasks`` (bigbench, hhh task.json: task names to
    keep), ``keyword_domains`` (bigbench), ``subset`` (hhh), ``as_messages`` (hh-rlhf), ``generators`` and
    ``annotator`` (alpaca-eval: the evaluated generators and the annotator to keep; records they leave
    out are not read).
    ``on_bad_rows``: ``'error'`` or ``'drop'`` (at most ``max_drop_fraction`` of the records).
    Returns the dataset, or ``(dataset, report)`` with ``return_report=True``; raises
    :class:`LoadError` (a ValueError) when the rows kept are not to be trusted.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {sorted(FORMATS)}")
    if on_bad_rows not in ("error", "drop"):
        raise ValueError(f"on_bad_rows must be 'error' or 'drop', got {on_bad_rows!r}")
    _check_fraction(max_drop_fraction)
    converter = FORMATS[format]
    unknown = sorted(set(options) - converter.OPTIONS)
    if unknown:
        raise ValueError(
            f"format {format!r} takes no option(s) {unknown}; it accepts {sorted(converter.OPTIONS) or 'none'}"
        )
    report = LoadReport(source=str(source), format=format)
    rows: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    select = getattr(converter, "select", None)
    for location, index, path, root, config, record in _records(
        source, format, split, hub_name, dict(hub_kwargs or {}), options
    ):
        if select is not None and not select(record, options, path):
            continue
        report.n_records += 1
        if isinstance(record, Unreadable):
            report.bad_rows.append(BadRow(location, record.reason))
            continue
        ctx = RecordContext(location, index, path, report, options, root, config)
        try:
            checked = [check_row(r) for r in converter.convert(record, ctx)]
            for row in checked:
                for col in TEXT_COLUMNS:
                    expected = kinds.get(col, kind_of(row[col]))
                    if kind_of(row[col]) != expected:
                        raise RowError(f"field '{col}' holds {kind_of(row[col])} but earlier rows hold {expected}")
        except RowError as err:
            report.bad_rows.append(BadRow(location, str(err)))
            continue
        for row in checked:
            for col in TEXT_COLUMNS:
                kinds.setdefault(col, kind_of(row[col]))
        rows.extend(checked)
    if report.bad_rows and on_bad_rows == "error":
        raise _bad_rows_error(report)
    report.n_pairs = len(rows)
    _check_kept(report, max_drop_fraction)
    _dedupe_ids(rows)
    ds = rows_to_dataset(rows, kinds or None)  # type: ignore[arg-type]
    log.info("loaded %s: %s", source, report.to_dict())
    return (ds, report) if return_report else ds
