"""Preference-pair files: THE reader and writer of the preference sets the pipeline passes around.

A preference set is a parquet file holding every column of a ``datasets.Dataset`` (the normalised
columns of ``core.data.schema`` plus whatever a stage adds: target rewards, eval metadata such as
``subset``).  :func:`read_pairs` reads it back with every column; :func:`write_pairs` writes it
atomically (:mod:`core.atomic`: temp file beside the target, then ``os.replace``), so a reader
never sees a half-written file.  Raw files in other formats are read by
``core.data.loaders.load_preferences``; :func:`write_dropped_rows` writes the rows such a load
dropped (the load stage's ``<output>.dropped.jsonl``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.atomic import atomic_write, atomic_write_text

if TYPE_CHECKING:  # imported where used: a process that only passes a job on stays light
    import datasets

    from core.data.schema import LoadReport

__all__ = ["read_pairs", "write_dropped_rows", "write_pairs"]


def read_pairs(path: str | os.PathLike[str]) -> datasets.Dataset:
    """A parquet preference set as an in-memory ``datasets.Dataset`` (every column kept).

    ``ValueError("dataset file <path> does not exist")`` when there is no such file.
    """
    import datasets
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise ValueError(f"dataset file {path} does not exist")
    return datasets.Dataset(pq.read_table(path))


def write_pairs(ds: datasets.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` (every column) as parquet to ``path`` atomically; returns ``Path(path)``."""
    return atomic_write(path, ds.to_parquet)


def write_dropped_rows(report: LoadReport, path: str | os.PathLike[str]) -> Path:
    """Every bad row of ``report`` as JSON lines ``{"file", "line" | "record" | "row" | "example",
    "reason"}`` (:meth:`core.data.schema.BadRow.to_dict`), in load order, written atomically; an
    empty file when nothing was dropped. Returns ``Path(path)``."""
    text = "".join(json.dumps(bad.to_dict()) + "\n" for bad in report.bad_rows)
    return atomic_write_text(path, text)
