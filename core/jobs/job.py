"""A Snakemake job as plain data (:class:`Job`): its named inputs and outputs, params, wildcards,
log, threads and resources, and its view as one job per seed (:meth:`Job.per_seed`).

How a job runs is in core.jobs.run (log, threads, seeds, multi-process launch), how a workflow
script starts it in core.jobs.launch (here or forked from the warm-start server, core.jobs.warm),
its MLflow run and metrics file in core.jobs.metrics, its checkpoints in core.jobs.checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.plan.paths import SEED_ENTRY


@dataclass
class Job:
    """A Snakemake job as plain data: named inputs/outputs (str or list of str), params, wildcards."""

    rule: str
    input: dict[str, Any]
    output: dict[str, Any]
    params: dict[str, Any]
    wildcards: dict[str, str]
    log: list[str] = field(default_factory=list)
    threads: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    script: str = ""
    #: what the job computes once for all its seeds (a benchmark's encoding, pi_ref's log-probs and
    #: oracle rewards), by name; shared by its per-seed views, never serialised
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def _named(nl: Any) -> dict[str, Any]:
        """Named entries of a Snakemake Namedlist; positional-only entries under '0', '1', ..."""
        out: dict[str, Any] = {}
        names = dict(nl.items()) if hasattr(nl, "items") else {}
        for k, v in names.items():
            out[k] = str(v) if isinstance(v, str) else [str(x) for x in v]
        if not out:
            out = {str(i): str(v) for i, v in enumerate(nl)}
        return out

    @classmethod
    def from_snakemake(cls, smk: Any, script: str) -> Job:
        resources = {k: v for k, v in smk.resources.items() if isinstance(v, int | float | str)}
        return cls(
            rule=str(smk.rule),
            input=cls._named(smk.input),
            output=cls._named(smk.output),
            params={k: _json_params(v) for k, v in smk.params.items()},
            wildcards={k: str(v) for k, v in smk.wildcards.items()},
            log=[str(x) for x in smk.log],
            threads=int(smk.threads),
            resources=resources,
            script=script,
        )

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-able data (without its cache)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cache"}

    def to_json(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def from_json(cls, path: str) -> Job:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    # convenience ---------------------------------------------------------------------------
    def one(self, group: dict[str, Any], key: str) -> str:
        value = group[key]
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError(f"rule {self.rule}: expected one file for {key!r}, got {value}")
            return value[0]
        return value

    def inp(self, key: str) -> str:
        return self.one(self.input, key)

    def out(self, key: str) -> str:
        return self.one(self.output, key)

    def inputs(self, key: str) -> list[str]:
        value = self.input.get(key, [])
        return [value] if isinstance(value, str) else list(value)

    def model_source(self, key: str) -> str:
        """A model folder the job reads: its input ``key`` when the workflow built it, else the
        hub id or local path in ``params[key]``."""
        files = self.inputs(key)
        if files:
            return self.one(self.input, key)
        if not self.params.get(key):
            raise ValueError(f"rule {self.rule}: neither input nor params name the model {key!r}")
        return str(self.params[key])

    def per_seed(self) -> list[Job]:
        """The job as one job per seed. A job over several seeds (``params.seeds``: all seeds of a
        grid point in one process, so the start-up is paid once) names its per-seed inputs and
        outputs ``<name>_seed<N>``; seed N's job sees them as ``<name>``, shares the unsuffixed
        ones, and has ``seed`` N in its params and wildcards (so in its MLflow run). A job without
        ``params.seeds`` is itself."""
        seeds = self.params.get("seeds")
        if seeds is None:
            return [self]
        names = [k for k in (*self.input, *self.output) if SEED_ENTRY.match(k)]
        unknown = sorted({SEED_ENTRY.match(k)["seed"] for k in names} - {str(s) for s in seeds})
        if unknown:
            raise ValueError(f"rule {self.rule}: entries for seeds {unknown} not in params.seeds {seeds}")

        def own(group: dict[str, Any], seed: str) -> dict[str, Any]:
            out = {}
            for k, v in group.items():
                m = SEED_ENTRY.match(k)
                if m is None:
                    out.setdefault(k, v)
                elif m["seed"] == seed:
                    out[m["name"]] = v
            return out

        views = []
        for s in seeds:
            params = {k: v for k, v in self.params.items() if k != "seeds"}
            params["seed"] = int(s)
            views.append(
                Job(
                    rule=self.rule,
                    input=own(self.input, str(s)),
                    output=own(self.output, str(s)),
                    params=params,
                    wildcards={**self.wildcards, "seed": str(s)},
                    log=list(self.log),
                    threads=self.threads,
                    resources=dict(self.resources),
                    script=self.script,
                    cache=self.cache,
                )
            )
        return views

    @property
    def run_name(self) -> str:
        wc = ",".join(f"{k}={v}" for k, v in sorted(self.wildcards.items()))
        return f"{self.rule}[{wc}]" if wc else self.rule

    @property
    def nproc(self) -> int:
        return int(self.params.get("job", {}).get("nproc", 1))

    @property
    def gpus(self) -> int:
        """GPUs the job's rule asks for (``resources.<kind>.gpu``)."""
        return int(self.params.get("job", {}).get("gpu", 0))

    @property
    def use_cpu(self) -> bool:
        return self.gpus == 0

    @property
    def length_buckets(self) -> int:
        """Chunks a training forward splits a padded batch into (core.trainers.bucketing; 1 = off)."""
        return int(self.params.get("job", {}).get("length_buckets", 1))


def _json_params(value: Any) -> Any:
    """Snakemake params as JSON-able Python (Namedlists -> lists)."""
    if isinstance(value, Mapping):
        return {str(k): _json_params(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_params(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def git_commit(path: str) -> str:
    """The workflow's git commit (``+dirty`` when the tree has changes; 'none' without one)."""
    try:
        head = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "none"
        dirty = subprocess.run(
            ["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "none"
