"""File helpers of the workflow scripts: preference sets as parquet (all columns kept, so eval
metadata such as ``subset`` survives), metrics JSONs in core.eval.results' layout, atomic writes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def read_pairs(path: str) -> Any:
    """A parquet preference set as an in-memory ``datasets.Dataset`` (every column kept)."""
    import datasets
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise ValueError(f"dataset file {path} does not exist")
    return datasets.Dataset(pq.read_table(path))


def write_pairs(ds: Any, path: str) -> None:
    """Write a dataset as parquet atomically (temp file in the same folder, then ``os.replace``)."""
    from core.atomic import atomic_write

    atomic_write(path, ds.to_parquet)


def write_json(path: str, payload: Any) -> None:
    from core.atomic import atomic_write_text
    from core.eval.results import to_jsonable

    atomic_write_text(path, json.dumps(to_jsonable(payload), indent=2, sort_keys=True) + "\n")


def write_job_metrics(job: Any, path: str, metrics: Mapping[str, Any], *, model_path: Any, dataset_path: Any,
                      counts: Mapping[str, Any], seed: int, run_id: str | None,
                      train_run_id: str | None = None, extra: Mapping[str, Any] | None = None) -> None:
    """A metrics file (core.eval.results layout) that records the MLflow runs behind it."""
    from wf_job import job_config

    from core.eval.results import write_metrics

    info = dict(extra or {})
    info["run_id"] = run_id or ""
    info["train_run_id"] = train_run_id or ""
    info["rule"] = job.rule
    info["wildcards"] = job.wildcards
    write_metrics(path, metrics, model_path=model_path, dataset_path=dataset_path, counts=counts,
                  seed=seed, config=job_config(job), name=Path(path).stem, extra=info)


def run_id_of(metrics_path: str) -> str:
    """The MLflow run id recorded in a metrics file written by :func:`write_job_metrics`."""
    with open(metrics_path, encoding="utf-8") as fh:
        return str(json.load(fh).get("extra", {}).get("run_id", ""))
