"""Metrics files: every evaluation result is one JSON under ``results/<config>/metrics/...`` (docs/design.md §5).

A file holds ``{"schema", "name", "metrics", "model_path", "dataset_path", "counts", "seed",
"config_hash", "config", "extra"}``: the numbers (nested mappings allowed; NaN/inf stored as
``null``), what produced them, example counts, the seed(s) and ``config_hash`` = the first 16 hex
digits of SHA-256 of the canonical JSON of the config slice (sorted keys, no whitespace).  Files
are written atomically (:mod:`core.atomic`: temp file in the same directory, then ``os.replace``)
and contain no
timestamp, so the same inputs give byte-identical files.  :func:`load_metrics` turns a set of
them into one pandas row per file for tables.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_json

__all__ = [
    "SCHEMA",
    "config_hash",
    "flatten",
    "load_metrics",
    "read_metrics",
    "to_jsonable",
    "write_metrics",
]

SCHEMA = "robust-rlhf/metrics/v1"
REQUIRED_KEYS = ("schema", "metrics", "model_path", "dataset_path", "counts", "seed", "config_hash")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays, dataclasses, paths, tuples converted; NaN/inf -> None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    raise ValueError(f"cannot store a {type(obj).__name__} in a metrics file: {obj!r}")


def config_hash(config: Mapping[str, Any] | None) -> str:
    """First 16 hex digits of SHA-256 of the canonical JSON of ``config``."""
    text = json.dumps(to_jsonable(config or {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_counts(counts: Mapping[str, Any], where: str) -> None:
    for k, v in counts.items():
        if isinstance(v, Mapping):
            _check_counts(v, f"{where}.{k}")
        elif isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ValueError(f"{where}.{k} must be a non-negative integer, got {v!r}")


def _check_seed(seed: Any) -> None:
    seeds = seed if isinstance(seed, list | tuple) else [seed]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in seeds):
        raise ValueError(f"seed must be an int or a non-empty list of ints, got {seed!r}")


def write_metrics(
    path: str | os.PathLike,
    metrics: Mapping[str, Any],
    *,
    model_path: str | os.PathLike | Sequence[str] | Mapping[str, str],
    dataset_path: str | os.PathLike | Sequence[str] | Mapping[str, str],
    counts: Mapping[str, Any],
    seed: int | Sequence[int],
    config: Mapping[str, Any] | None = None,
    name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Validate and atomically write one metrics JSON; returns its path."""
    path = Path(path)
    if path.suffix != ".json":
        raise ValueError(f"metrics file {path} must end in .json")
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError(f"metrics for {path} must be a non-empty mapping")
    if not isinstance(counts, Mapping):
        raise ValueError(f"counts for {path} must be a mapping of non-negative integers")
    _check_counts(counts, "counts")
    _check_seed(seed)
    record = {
        "schema": SCHEMA,
        "name": name if name is not None else path.stem,
        "metrics": to_jsonable(metrics),
        "model_path": to_jsonable(model_path),
        "dataset_path": to_jsonable(dataset_path),
        "counts": to_jsonable(counts),
        "seed": to_jsonable(seed),
        "config_hash": config_hash(config),
        "config": to_jsonable(config or {}),
        "extra": to_jsonable(extra or {}),
    }
    return atomic_write_json(path, record, indent=2, sort_keys=True, allow_nan=False)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one metrics JSON (ValueError naming the file and the missing key)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such metrics file")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object")
    for key in REQUIRED_KEYS:
        if key not in record:
            raise ValueError(f"{path}: missing key {key!r} (a metrics file has {list(REQUIRED_KEYS)})")
    if record["schema"] != SCHEMA:
        raise ValueError(f"{path}: schema {record['schema']!r}, expected {SCHEMA!r}")
    return record


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as one level: ``{"a": {"b": 1}} -> {"a.b": 1}`` (an empty mapping is a
    leaf). The one flattener of metrics files, MLflow params and MLflow metrics."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(p.rglob("*.json")))
        elif any(ch in str(item) for ch in "*?["):
            out.extend(sorted(Path(m) for m in glob.glob(str(item), recursive=True)))
        else:
            out.append(p)
    return out


def load_metrics(paths: str | os.PathLike | Iterable[str | os.PathLike]):
    """One DataFrame row per metrics file (a directory is searched recursively, globs expand).

    Columns: ``path``, ``name``, ``model_path``, ``dataset_path``, ``seed``, ``config_hash``,
    the metrics flattened with ``.`` (``sections.Chat``), ``count.<key>`` and ``extra.<key>``.
    """
    import pandas as pd

    files = _expand(paths)
    if not files:
        raise ValueError(f"no metrics files found in {paths!r}")
    rows = []
    for f in files:
        rec = read_metrics(f)
        row: dict[str, Any] = {
            "path": str(f),
            "name": rec.get("name"),
            "model_path": rec["model_path"],
            "dataset_path": rec["dataset_path"],
            "seed": rec["seed"],
            "config_hash": rec["config_hash"],
        }
        flat: dict[str, Any] = {}
        flat.update(flatten(rec["metrics"]))
        clash = sorted(set(flat) & set(row))
        if clash:
            raise ValueError(f"{f}: metric names {clash} clash with metadata columns")
        row.update(flat)
        row.update(flatten(rec["counts"], "count."))
        row.update(flatten(rec.get("extra") or {}, "extra."))
        rows.append(row)
    return pd.DataFrame(rows)
