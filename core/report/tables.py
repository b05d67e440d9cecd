"""Paper tables built from metrics JSON files: every number is read from a file, never typed in.

A table is a :class:`core.report.spec_types.Table` (rows x columns of cell specs naming metrics
files and JSON keys ``a/b/c``; the formulas of seed means, intervals, selection and the Wald test
are stated there). Each cell also collects the MLflow run ids of its files (``extra/run_id``: the
job that wrote the file; ``extra/train_run_id``: the training run of the model it evaluates).
Outputs: a wide CSV (value, ``ci_low``, ``ci_high`` per column, ``n_seeds``, ``run_ids``) and a
Markdown table with the same numbers rounded, written atomically.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from core.atomic import atomic_write_text
from core.report.spec_types import Candidate, CellSpec, Column, SeedFiles, Selection, SettingsTable, Table, Wald

__all__ = [
    "Cell",
    "build_table",
    "evaluate_cell",
    "read_metric",
    "table_markdown",
    "write_settings_table",
    "write_table",
]

#: where a metrics file (core.eval.results layout) records the MLflow runs that produced it
RUN_ID_KEYS = ("extra/run_id", "extra/train_run_id")


@lru_cache(maxsize=4096)
def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"metrics file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"metrics file {path} is not valid JSON: {exc}") from None


def _split_key(key: str | Sequence[str]) -> list[str]:
    return [p for p in key.split("/") if p] if isinstance(key, str) else [str(p) for p in key]


def read_metric(path: str, key: str | Sequence[str]) -> Any:
    """The value at ``key`` (``a/b/c``) of the JSON file ``path``; ValueError naming both if absent."""
    node: Any = _load(os.fspath(path))
    walked = []
    for part in _split_key(key):
        walked.append(part)
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        else:
            have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise ValueError(f"metrics file {path}: key {'/'.join(walked)!r} not found (available: {have})")
    return node


def read_number(path: str, key: str | Sequence[str]) -> float:
    """A number of a metrics file; ``null`` (how core.eval.results stores NaN, e.g. a RewardBench
    section without examples) reads as NaN and shows as an empty cell."""
    value = read_metric(path, key)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metrics file {path}: key {key!r} holds {value!r}, expected a number")
    return float(value)


def _run_ids(files: Sequence[str]) -> list[str]:
    out: list[str] = []
    for f in files:
        for k in RUN_ID_KEYS:
            try:
                rid = read_metric(f, k)
            except ValueError:
                continue
            if isinstance(rid, str) and rid and rid not in out:
                out.append(rid)
    return out


def t_quantile(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def paired_interval(diffs: Sequence[float]) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of per-seed paired differences: the mean and its 95% Student-t
    interval ``mean +- t_{0.975, n-1} sd / sqrt(n)`` (NaN bounds with one seed)."""
    import numpy as np

    values = np.asarray(diffs, dtype=float)
    n, mean = len(values), float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(n) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


@dataclass
class Cell:
    """One table entry: seed mean, 95% interval (NaN when none), seed count, runs, selection."""

    mean: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 1
    run_ids: list[str] = field(default_factory=list)
    selected: str | None = None


def _mean_cell(files: Sequence[str], key: Any, scale: float, ci_keys: Sequence[Any] | None) -> Cell:
    if not files:
        raise ValueError(f"a table cell for key {key!r} has no metrics files")
    values = [scale * read_number(f, key) for f in files]
    n = len(values)
    mean = sum(values) / n
    lo = hi = math.nan
    if n > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = t_quantile(n) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    elif ci_keys:
        lo, hi = (scale * read_number(files[0], k) for k in ci_keys)
    return Cell(mean, lo, hi, n, _run_ids(files))


def _per_prompt(files: Sequence[str], key: Any) -> list[float]:
    """Per-prompt values averaged over seed files (all files score the same prompts in order)."""
    arrays = [read_metric(f, key) for f in files]
    for f, a in zip(files, arrays, strict=True):
        if not isinstance(a, list) or len(a) != len(arrays[0]):
            raise ValueError(f"metrics file {f}: key {key!r} must be a list of {len(arrays[0])} per-prompt values")
    return [sum(float(a[i]) for a in arrays) / len(arrays) for i in range(len(arrays[0]))]


def _wald_cell(spec: Wald) -> Cell:
    """Paired Wald test (core.eval.oracle.wald_test) of the two sides' per-prompt rewards."""
    from core.eval.oracle import wald_test

    sides, run_ids, ns = [], [], []
    for sub in spec.sides:
        files = reported_files(sub)
        sides.append(_per_prompt(files, spec.samples_key))
        run_ids += [r for r in _run_ids(files) if r not in run_ids]
        ns.append(len(files))
    test = wald_test(sides[0], sides[1], paired=True)
    return Cell(test.p_value, n=min(ns), run_ids=run_ids)


def select_candidate(spec: Selection) -> Candidate:
    """The candidate with the best seed-mean of ``select_key`` (first one on ties)."""
    sign = -1.0 if spec.minimize else 1.0
    best, best_score = None, -math.inf
    for cand in spec.candidates:
        score = sign * sum(read_number(f, spec.select_key) for f in cand.select) / len(cand.select)
        if best is None or score > best_score:
            best, best_score = cand, score
    if best is None:
        raise ValueError(f"selection cell over {spec.select_key!r} has no candidates")
    return best


def reported_files(cell: SeedFiles | Selection) -> list[str]:
    """The per-seed files a cell reports: its own, or its selected candidate's."""
    return list(select_candidate(cell).files if isinstance(cell, Selection) else cell.files)


def evaluate_cell(cell: CellSpec, column: Column) -> Cell:
    """Number (with interval, seeds and run ids) of one cell spec under its column spec."""
    if isinstance(cell, Wald):
        return _wald_cell(cell)
    key = cell.key or column.key
    if isinstance(cell, Selection):
        chosen = select_candidate(cell)
        out = _mean_cell(chosen.files, key, float(column.scale), column.ci_keys)
        out.run_ids += [r for r in _run_ids(chosen.select) if r not in out.run_ids]
        out.selected = chosen.label
        return out
    return _mean_cell(cell.files, key, float(column.scale), column.ci_keys)


def _record(spec: Table, row: Any, cells: dict[str, Cell]) -> dict[str, Any]:
    """One row of the wide frame: value and interval per column, selections, seeds and runs."""
    rec: dict[str, Any] = {"group": row.group or "", spec.row_header: row.label}
    ns, runs = [], []
    for col in spec.columns:
        cell = cells.get(col.label)
        rec[col.label] = math.nan if cell is None else cell.mean
        rec[f"{col.label} ci_low"] = math.nan if cell is None else cell.ci_low
        rec[f"{col.label} ci_high"] = math.nan if cell is None else cell.ci_high
        if cell is None:
            continue
        if cell.selected is not None:
            rec[f"{col.label} selected"] = cell.selected
        ns.append(cell.n)
        runs += [r for r in cell.run_ids if r not in runs]
    rec["n_seeds"] = (str(ns[0]) if len(set(ns)) == 1 else f"{min(ns)}-{max(ns)}") if ns else ""
    rec["run_ids"] = ";".join(runs)
    return rec


def build_table(spec: Table) -> tuple[pd.DataFrame, dict[tuple[int, str], Cell]]:
    """The wide table of ``spec`` and its cells keyed by (row index, column label)."""
    labels = [c.label for c in spec.columns]
    if len(set(labels)) != len(labels):
        raise ValueError(f"table {spec.name}: duplicate column labels {labels}")
    records, cells = [], {}
    for i, row in enumerate(spec.rows):
        row_cells = {}
        for col in spec.columns:
            if col.label not in row.cells:
                continue
            try:
                row_cells[col.label] = cells[(i, col.label)] = evaluate_cell(row.cells[col.label], col)
            except ValueError as exc:
                raise ValueError(f"table {spec.name}, row {row.label!r}, column {col.label!r}: {exc}") from None
        records.append(_record(spec, row, row_cells))
    order = ["group", spec.row_header]
    for col in spec.columns:
        order += [col.label, f"{col.label} ci_low", f"{col.label} ci_high"]
        if any(c.selected is not None for (_, lab), c in cells.items() if lab == col.label):
            order.append(f"{col.label} selected")
    order += ["n_seeds", "run_ids"]
    return pd.DataFrame.from_records(records).reindex(columns=order), cells


def _fmt(value: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def table_markdown(spec: Table, frame: pd.DataFrame) -> str:
    """Markdown rendering: title, caption, grouped rows, ``mean [lo, hi]`` cells, seeds, runs."""
    header = spec.row_header
    columns = spec.columns
    heads = [header] + [c.label for c in columns] + ["seeds", "runs"]
    lines = [f"### {spec.title or spec.name}", ""]
    if spec.caption:
        lines += [spec.caption, ""]
    lines += ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    group = None
    for _, rec in frame.iterrows():
        if rec["group"] and rec["group"] != group:
            group = rec["group"]
            lines.append("| **" + str(group) + "** |" + " |" * (len(heads) - 1))
        cells = [str(rec[header])]
        for col in columns:
            d = int(col.digits)
            text = _fmt(rec[col.label], d)
            lo, hi = rec[f"{col.label} ci_low"], rec[f"{col.label} ci_high"]
            if not (math.isnan(lo) or math.isnan(hi)):
                text += f" [{_fmt(lo, d)}, {_fmt(hi, d)}]"
            sel = rec.get(f"{col.label} selected")
            if isinstance(sel, str) and sel:
                text += f" ({sel})"
            cells.append(text)
        runs = [r[:8] for r in str(rec["run_ids"]).split(";") if r]
        cells += [str(rec["n_seeds"]), " ".join(runs) if len(runs) <= 4 else f"{' '.join(runs[:4])} +{len(runs) - 4}"]
        lines.append("| " + " | ".join(cells) + " |")
    if spec.footnote:
        lines += ["", spec.footnote]
    return "\n".join(lines) + "\n"


def write_table(spec: Table | SettingsTable, csv_path: str, md_path: str) -> pd.DataFrame:
    """Build ``spec`` and write it as CSV (full precision) and Markdown (rounded), atomically."""
    if isinstance(spec, SettingsTable):
        return write_settings_table(spec, csv_path, md_path)
    _load.cache_clear()
    frame, _ = build_table(spec)
    atomic_write_text(csv_path, frame.to_csv(index=False))
    atomic_write_text(md_path, table_markdown(spec, frame))
    return frame


def write_settings_table(spec: SettingsTable, csv_path: str, md_path: str) -> pd.DataFrame:
    """A settings table (the papers' hyper-parameter Tables 7 and 13) read from the config: one
    row ``[setting, value_experiment_1, ...]`` per entry of ``spec.rows`` under ``spec.columns``."""
    cols = list(spec.columns)
    rows = [list(r) for r in spec.rows]
    for r in rows:
        if len(r) != len(cols):
            raise ValueError(f"table {spec.name}: row {r!r} has {len(r)} entries for columns {cols}")
    frame = pd.DataFrame(rows, columns=cols)
    lines = [f"### {spec.title or spec.name}", ""]
    if spec.caption:
        lines += [spec.caption, ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join("–" if v is None else str(v) for v in r) + " |" for r in rows]
    atomic_write_text(csv_path, frame.to_csv(index=False))
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return frame
