"""The job adapter of the workflow scripts: a Snakemake job as plain data, its log, threads, MLflow
run, metrics file and multi-process launch.

A script ends with ``entrypoint(main, globals())`` for a ``main(job: Job) -> None`` from ``core``:

* run by Snakemake's ``script:`` directive, the job comes from the ``snakemake`` object;
* when the job's params ask for ``nproc > 1`` processes, the script relaunches itself through
  ``accelerate launch --multi_gpu --num_processes N`` (torch.distributed's launcher; on CPU the
  trainers set ``use_cpu`` so the processes use gloo), each process reading the same job from a
  JSON file (``--job``);
* stdout/stderr go to the job's log file, torch/BLAS use ``job.threads`` threads, and
  :func:`tracked_run` opens one MLflow run per job (experiment = config name; params = the job's
  config slice, wildcards, rule and git commit) on rank 0 only;
* SIGTERM (SLURM's time limit, ``scancel``) unwinds the job like Ctrl-C
  (``core.tracking.raise_on_sigterm``): its MLflow run ends KILLED and the process exits with
  143 (128 + SIGTERM); a FAILED/KILLED run is continued by the job's next try (:func:`run_file`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LAUNCHED_ENV = "ROBUST_RLHF_LAUNCHED"
#: an input/output of one seed of a job over several seeds: ``<name>_seed<N>`` (:meth:`Job.per_seed`)
SEED_ENTRY = re.compile(r"^(?P<name>.+)_seed(?P<seed>[0-9]+)$")


#: written into a checkpoint (or the finished-outputs stash) after all of it was written
COMPLETE_MARKER = ".complete"
#: where a finished seed's outputs wait, inside its checkpoint folder, until its whole job succeeds
FINISHED = "finished"


def checkpoint_dir(model_out: str) -> str:
    """A training job's checkpoint folder: ``results/<config>/checkpoints/<model path>`` for a
    model written to ``results/<config>/models/<model path>`` (else ``<model_out>.checkpoints``):
    outside Snakemake's outputs, so removing a failed job's outputs keeps its checkpoints."""
    head, sep, tail = model_out.rpartition("/models/")
    return f"{head}/checkpoints/{tail}" if sep else f"{model_out}.checkpoints"


def seed_entry(name: str, seed: int | str) -> str:
    """The input/output name of ``name`` for one seed of a job over several seeds."""
    return f"{name}_seed{seed}"


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

    def to_json(self, path: str) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1, sort_keys=True), encoding="utf-8")

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
    def use_cpu(self) -> bool:
        return int(self.params.get("job", {}).get("gpu", 0)) == 0

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


def _redirect_to_log(path: str | None) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to the job's log, and
    through ``tee`` also to ``<log>.attempts``, which is not one of Snakemake's files: Snakemake
    deletes a job's log before rerunning it, so the attempts file keeps a killed attempt's log."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        tee = subprocess.Popen(["tee", "-a", path, path + ".attempts"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL)  # fmt: skip
        fd = tee.stdin.fileno()
    except OSError:  # no tee: the job's log only
        tee, fd = None, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if tee is None:
        os.close(fd)
    else:
        tee.stdin.close()  # fds 1 and 2 keep the pipe open; tee ends when this process does


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    os.environ.setdefault("DISABLE_MLFLOW_INTEGRATION", "TRUE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def set_torch_threads(job: Job) -> None:
    """Limit torch's intra-op threads to the job's share of the cores."""
    import torch

    torch.set_num_threads(max(1, job.threads))


def _relaunch(job: Job) -> None:
    """Run this script in ``job.nproc`` processes through ``accelerate launch``."""
    spec = (job.log[0] if job.log else job.out(next(iter(job.output)))) + ".job.json"
    os.makedirs(os.path.dirname(os.path.abspath(spec)), exist_ok=True)
    job.to_json(spec)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(job.nproc),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        job.script,
        "--job",
        spec,
    ]
    env = dict(os.environ, **{LAUNCHED_ENV: "1"})
    print("launching:", " ".join(cmd), flush=True)
    from core.tracking import Terminated

    proc = subprocess.Popen(cmd, env=env)
    try:
        returncode = proc.wait()
    except (Terminated, KeyboardInterrupt):
        # pass the stop on (the launcher forwards it to the ranks, whose runs end KILLED) and give
        # them time to close their runs before the scheduler's SIGKILL
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if returncode != 0:
        raise RuntimeError(f"rule {job.rule}: `accelerate launch` of {job.nproc} processes exited with {returncode}")


def _outputs(job: Job) -> list[tuple[str, str]]:
    return [(k, p) for k, v in job.output.items() for p in ([v] if isinstance(v, str) else v)]


def _keep_finished(job: Job) -> None:
    """Copy a finished seed's outputs into its checkpoint folder (a later seed of the same job may
    die, and Snakemake then removes every output of the job before the rerun)."""
    import shutil

    keep = os.path.join(checkpoint_dir(job.out("model")), FINISHED)
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    for name, path in _outputs(job):
        (shutil.copytree if os.path.isdir(path) else shutil.copy2)(path, os.path.join(keep, name))
    Path(keep, COMPLETE_MARKER).write_text("done\n", encoding="utf-8")


def _finished(job: Job) -> bool:
    return os.path.isfile(os.path.join(checkpoint_dir(job.out("model")), FINISHED, COMPLETE_MARKER))


def _restore_finished(job: Job) -> None:
    """Put back the outputs a killed attempt had finished for this seed (:func:`_keep_finished`)."""
    import shutil

    keep = os.path.join(checkpoint_dir(job.out("model")), FINISHED)
    for name, path in _outputs(job):
        if os.path.lexists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        src = os.path.join(keep, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, path)
    print(f"[checkpoint] {job.run_name}: restored the outputs an earlier attempt finished ({keep})", flush=True)


def _run_seeds(main: Callable[[Job], None], job: Job) -> None:
    """Run ``main`` once per seed of the job (:meth:`Job.per_seed`). A training job (one with a
    ``model`` output) resumes: a seed an earlier attempt finished is restored, not retrained, and
    every checkpoint folder is removed once all seeds have succeeded."""
    views = job.per_seed()
    training = all("model" in one.output for one in views)
    for one in views:
        if training and len(views) > 1 and _finished(one):  # every rank skips it; rank 0 restores
            if rank() == 0:
                _restore_finished(one)
            continue
        main(one)
        if training and len(views) > 1 and rank() == 0:
            _keep_finished(one)
    if training and rank() == 0:
        import shutil

        for one in views:
            folder = checkpoint_dir(one.out("model"))
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # and its parents, while they are empty
                os.removedirs(os.path.dirname(folder))


def entrypoint(main: Callable[[Job], None], scope: dict[str, Any]) -> None:
    """Build the job (from Snakemake or ``--job``) and run ``main``: in a child of the warm-start
    server when one answers (core.pipeline.warm, one-process jobs), else in this process."""
    smk = scope.get("snakemake")
    script = os.path.realpath(scope.get("__file__", sys.argv[0]))
    if smk is not None:
        job = Job.from_snakemake(smk, script)
    else:
        if len(sys.argv) != 3 or sys.argv[1] != "--job":
            raise SystemExit(f"usage: {sys.argv[0]} --job JOB.json (or run by Snakemake's script directive)")
        job = Job.from_json(sys.argv[2])
    if smk is not None and job.nproc == 1:
        from core.pipeline.warm import run_warm

        code = run_warm(job, main)  # None: no warm-start server answers, run here
        if code is not None:
            raise SystemExit(code)
    run_job(main, job)


def run_job(main: Callable[[Job], None], job: Job) -> None:
    """Run ``job`` in this process: output to its log, its threads, SIGTERM unwinds, each seed."""
    _redirect_to_log(job.log[0] if job.log else None)
    _set_threads(job.threads)
    from core.tracking import Terminated, raise_on_sigterm

    raise_on_sigterm()
    start = time.time()
    print(f"[workflow] {job.run_name} rank {rank()} started {time.strftime('%H:%M:%S')}", flush=True)
    try:
        if job.nproc > 1 and not os.environ.get(LAUNCHED_ENV):
            _relaunch(job)
        else:
            _run_seeds(main, job)
        cpu = time.process_time()  # this process's CPU seconds: imports included (none in a warm-started child)
        print(
            f"[workflow] {job.run_name} rank {rank()} done in {time.time() - start:.1f} s (cpu {cpu:.1f} s)", flush=True
        )
    except Terminated as stop:
        print(f"[workflow] {job.run_name} rank {rank()} stopped: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(128 + stop.signum) from None
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        raise


# ------------------------------------------------------------------------------ MLflow
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


@contextlib.contextmanager
def tracked_run(
    job: Job, extra_params: Mapping[str, Any] | None = None, run_id_file: str | None = None
) -> Iterator[Any]:
    """One MLflow run for this job (rank 0; other ranks get a no-op logger). Its id is kept in
    ``run_id_file`` (default :func:`run_file`) until it FINISHED, so a job started again continues
    the run instead of opening another (``core.tracking.mlflow_run``)."""
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
        job.run_name,
        params=params,
        tracking_uri=tracking["uri"],
        tags=tags,
        run_file=run_id_file or run_file(job),
    ) as run:
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
