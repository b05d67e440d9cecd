"""A job's MLflow run (:func:`tracked_run`: one per job, rank 0; experiment = config name; params =
the job's config slice, wildcards, rule and git commit; continued by the job's next try through
:func:`run_file`) and its metrics file (:func:`write_job_metrics`: core.eval.results' layout with
the MLflow runs behind it).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from core.jobs.job import Job, git_commit, rank

CONTROL_PARAMS = ("tracking", "job")


def job_config(job: Job) -> dict[str, Any]:
    """The job's config slice: its params without the tracking/launch settings."""
    return {k: v for k, v in job.params.items() if k not in CONTROL_PARAMS}


def run_file(job: Job) -> str:
    """Where the job keeps its MLflow run id while the run is not FINISHED: ``<first output>.mlflow_run``
    (one per seed of a job over seeds). Its next try (Snakemake's retry, a rerun after a kill)
    continues that run (``core.tracking.resume_run_id``)."""
    first = next(iter(job.output.values()), None) if job.output else None
    if isinstance(first, list):
        first = first[0] if first else None
    if not first:
        raise ValueError(f"rule {job.rule}: a tracked job needs an output to keep its run id beside")
    return f"{first}.mlflow_run"


#: a rule's words in its runs' names (else the rule without ``train_``, underscores as spaces)
RULE_WORDS = {"train_rm_dr": "rm", "eval_rm_dr": "eval rm", "train_dpo_dr": "dpo", "eval_dpo_dr": "eval dpo",
              "train_ppo": "ppo", "eval_ppo": "eval ppo", "train_distill_policy": "distill",
              "train_distill_rm": "distill rm", "train_oracle_rm": "oracle rm"}  # fmt: skip
#: wildcards in the order a run's name shows them (what tells the runs of one table apart first;
#: the variant, which picks the table, last), and their formats
WILDCARD_ORDER = ("method", "rmset", "version", "div", "rho", "bias", "beta", "gamma", "member", "name", "seed",
                  "variant")  # fmt: skip
WILDCARD_FORMAT = {"rho": "ρ={}", "beta": "β={}", "bias": "bias={}", "seed": "s{}"}
#: wildcard values a name leaves out: the default one of their rule (a DR reward model's set ``rm``)
WILDCARD_DEFAULT = {("rmset", "rm")}


def run_title(rule: str, wildcards: Mapping[str, Any]) -> str:
    """A run's name in MLflow, leading with what tells it apart: ``rm tv ρ=0.2 s3 unfiltered`` for
    ``train_rm_dr[div=tv,rho=0.2,seed=3,variant=unfiltered]`` (the rule and every wildcard stay in
    the run's tags and params)."""
    shown = [k for k in wildcards if (k, str(wildcards[k])) not in WILDCARD_DEFAULT]
    keys = sorted(shown, key=lambda k: (WILDCARD_ORDER.index(k) if k in WILDCARD_ORDER else len(WILDCARD_ORDER), k))
    words = [WILDCARD_FORMAT.get(k, "{}" if k in WILDCARD_ORDER else f"{k}={{}}").format(wildcards[k]) for k in keys]
    return " ".join([RULE_WORDS.get(rule, rule.removeprefix("train_").replace("_", " ")), *words])


@contextlib.contextmanager
def tracked_run(
    job: Job,
    extra_params: Mapping[str, Any] | None = None,
    run_id_file: str | None = None,
    train_run_id: str | None = None,
) -> Iterator[Any]:
    """One MLflow run for this job (rank 0; other ranks get a no-op logger), named by
    :func:`run_title`, tagged with its rule, wildcards and job (its FINISHED run supersedes the job's
    earlier runs). Its id is kept in ``run_id_file`` (default :func:`run_file`) until it FINISHED, so
    a job started again continues the run instead of opening another (``core.tracking.mlflow_run``).
    ``train_run_id``: the run that trained the model this job evaluates, linked both ways."""
    from core.tracking import RunLogger, mlflow_run

    tracking = job.params.get("tracking") or {}
    if rank() != 0 or not tracking.get("uri"):
        yield RunLogger()
        return
    root = os.path.dirname(os.path.dirname(job.script)) if job.script else os.getcwd()
    params = {
        "rule": job.rule,
        "wildcards": job.wildcards,
        "git_commit": git_commit(root),
        "config": job_config(job),
        "resources": {"threads": job.threads, "nproc": job.nproc},
    }
    params.update(extra_params or {})
    tags = {"rule": job.rule, **{f"wildcard.{k}": v for k, v in job.wildcards.items()}}
    with mlflow_run(
        tracking["experiment"],
        run_title(job.rule, job.wildcards),
        params=params,
        tracking_uri=tracking["uri"],
        tags=tags,
        run_file=run_id_file or run_file(job),
        job=job.run_name,
    ) as run:
        run.link_training_run(train_run_id or "", job.rule)
        yield run


def log_metrics_file(run: Any, path: str, metrics: Mapping[str, Any]) -> None:
    """Final metrics (flattened, numeric) and the metrics file as an artifact."""
    from core.eval.results import flatten

    flat = {k: v for k, v in flatten(metrics).items() if isinstance(v, int | float) and not isinstance(v, bool)}
    run.log_metrics({k.replace("/", ".").replace(" ", "_"): v for k, v in flat.items()})
    run.log_artifact(path)


def write_job_metrics(
    job: Job,
    path: str,
    metrics: Mapping[str, Any],
    *,
    model_path: Any,
    dataset_path: Any,
    counts: Mapping[str, Any],
    seed: int,
    run_id: str | None,
    train_run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """A metrics file (core.eval.results layout) that records the MLflow runs behind it."""
    from core.eval.results import write_metrics

    info = dict(extra or {})
    info["run_id"] = run_id or ""
    info["train_run_id"] = train_run_id or ""
    info["rule"] = job.rule
    info["wildcards"] = job.wildcards
    write_metrics(
        path,
        metrics,
        model_path=model_path,
        dataset_path=dataset_path,
        counts=counts,
        seed=seed,
        config=job_config(job),
        name=Path(path).stem,
        extra=info,
    )


def run_id_of(metrics_path: str) -> str:
    """The MLflow run id recorded in a metrics file written by :func:`write_job_metrics`."""
    with open(metrics_path, encoding="utf-8") as fh:
        return str(json.load(fh).get("extra", {}).get("run_id", ""))


def write_json(path: str, payload: Any) -> None:
    """A JSON file (sorted keys, numpy values as plain numbers) written atomically."""
    from core.atomic import atomic_write_json
    from core.eval.results import to_jsonable

    atomic_write_json(path, to_jsonable(payload), indent=2, sort_keys=True)
