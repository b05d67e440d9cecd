"""MLflow helpers for the trainers and the workflow (docs/design.md §5: tracking URI from the config).

``mlflow_run(experiment, run_name, params, tracking_uri=None)`` opens one MLflow run and yields
a :class:`RunLogger` (params, step metrics, artifacts, and ``callback()`` for a transformers
``Trainer``).  The tracking URI is the argument, else ``MLFLOW_TRACKING_URI``; with neither, the
run is a no-op and mlflow is never imported, so everything works without MLflow configured.

SQLite backends (``sqlite:///results/mlflow.db``) are shared by parallel Snakemake jobs: every
MLflow call is retried with jittered exponential backoff on SQLite's "database is locked" and on
the races of two processes creating the schema or the same experiment at once.  Artifacts of a
SQLite-backed experiment go to ``<db dir>/mlartifacts/<experiment>``, stored relative to the
working directory when the store's URI is (``sqlite:///results/mlflow.db``): a copied ``results/``
keeps its artifacts wherever the UI is started beside it, as it keeps its store.

What a researcher sees (README, MLflow): every experiment is of the model-training kind (the
:data:`EXPERIMENT_KIND` tag; MLflow 3.17's UI follows its workflow switch instead, which the link
of :func:`experiment_url` sets, ``make mlflow-ui``); a job that FINISHED supersedes every earlier run of the same job
(``supersede``: tag ``superseded_by``, then deleted, restorable with ``mlflow runs restore``), so
the experiment's runs hold one run per job; an evaluation run links the run that trained its model
(:meth:`RunLogger.link_training_run`: tag ``train_run_id`` and a link in each run's description).

A run is never lost nor left RUNNING by a job that stops:

* **status**: the run ends FINISHED, FAILED when the body raises, KILLED on SIGTERM (SLURM's time
  limit, ``scancel``: :func:`raise_on_sigterm` turns it into :class:`Terminated`, which unwinds
  the job like Ctrl-C does) or Ctrl-C. Only SIGKILL leaves a run RUNNING; the next try continues
  it (below).
* **step metrics are buffered**: :meth:`RunLogger.log_step_metrics` (the Trainer callback, the
  probes) only queues them; a background thread sends them, retrying a locked store for as long
  as the job runs, so a slow or locked store never stalls or crashes training. Errors there are
  printed to the job's log, never raised (the metrics file keeps the curves anyway). The queue
  is flushed when the run ends (at most ``FLUSH_S`` seconds, ``KILLED_FLUSH_S`` after SIGTERM).
* **resuming**: with ``run_file`` (``core.jobs.metrics.tracked_run`` passes
  ``<first output>.mlflow_run``) the run id is written there when the run opens and removed when
  it FINISHED; a job started again (retry, restart after a kill, a resumed checkpoint) continues
  the run named there (:func:`resume_run_id`) when it exists, is not FINISHED and has the same
  params, so one grid point keeps one run; otherwise a new run gets the tag ``previous_run_id``
  (and a still-RUNNING old run is marked KILLED).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import math
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "RunLogger",
    "Terminated",
    "call_with_retry",
    "experiment_url",
    "make_step_callback",
    "mlflow_run",
    "raise_on_sigterm",
    "resolve_tracking_uri",
    "resume_run_id",
]

T = TypeVar("T")

_RETRYABLE = (
    "database is locked",
    "database table is locked",
    "already exists",
    "unique constraint",
    "no such table",
)
_MAX_PARAM_LENGTH = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
#: seconds the end of a run waits for buffered step metrics (after SIGTERM: SLURM's KillWait is 30 s)
FLUSH_S = 120.0
KILLED_FLUSH_S = 10.0
#: step metrics held while the store is unreachable; beyond this the oldest are dropped (with a warning)
MAX_PENDING_METRICS = 200_000
#: an experiment of the model-training kind (MLflow 3 versions that read the tag open it on its runs)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: a run's description in the MLflow UI (markdown)
NOTE_TAG = "mlflow.note.content"
#: the tag naming a run's job (rule and wildcards): the runs of one job supersede each other
JOB_TAG = "job"


def _warn(message: str) -> None:
    print(f"[tracking] WARNING: {message}", file=sys.stderr, flush=True)


def _retryable(exc: BaseException) -> bool:
    message = str(exc).lower()
    return any(marker in message for marker in _RETRYABLE)


def resolve_tracking_uri(tracking_uri: str | None = None) -> str | None:
    """The tracking URI to use: the argument, else ``MLFLOW_TRACKING_URI``, else ``None`` (tracking off)."""
    uri = tracking_uri if tracking_uri else os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri.strip() or None


def call_with_retry(fn: Callable[[], T], attempts: int = 12, base_delay: float = 0.05, max_delay: float = 2.0) -> T:
    """Call ``fn``; on an error whose message shows a SQLite lock or a creation race, retry with backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # mlflow wraps sqlalchemy errors in MlflowException
            if attempt == attempts - 1 or not _retryable(exc):
                raise
            delay = min(max_delay, base_delay * 2**attempt)
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def _flatten(params: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params: flattened, as text of at most ``_MAX_PARAM_LENGTH`` characters."""
    flat: dict[str, str] = {}
    from core.eval.results import flatten

    for name, value in flatten(params).items():
        text = str(value)
        flat[name] = text if len(text) <= _MAX_PARAM_LENGTH else text[: _MAX_PARAM_LENGTH - 3] + "..."
    return flat


def _numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = float(value)
        if hasattr(value, "item") and callable(value.item):
            try:
                value = value.item()
            except (TypeError, ValueError, RuntimeError):
                continue
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def _sqlite_artifact_location(uri: str, experiment: str) -> str | None:
    """``<db dir>/mlartifacts/<experiment>`` of a SQLite store: relative (to the working directory)
    when the store's path is, as MLflow resolves both; None for other stores (their server decides)."""
    if not uri.startswith("sqlite:///"):
        return None
    db_path = uri[len("sqlite:///") :]
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment) or "default"
    return os.path.join(os.path.dirname(db_path), "mlartifacts", folder)


# ------------------------------------------------------------------------- termination
class Terminated(BaseException):
    """SIGTERM arrived (SLURM's time limit, ``scancel``, a stopped Snakemake): raised in the main
    thread by the handler of :func:`raise_on_sigterm`, so the job unwinds like on Ctrl-C (``finally``
    blocks run, :func:`mlflow_run` ends the run KILLED). A ``BaseException``: ``except Exception``
    does not swallow it."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)
        super().__init__(f"terminated by {signal.Signals(self.signum).name}")


_terminating = threading.Event()


def raise_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (call it from the main thread).
    Only the first SIGTERM raises; later ones (SLURM may signal again before its SIGKILL) are
    ignored while the job unwinds and closes its run."""

    def handler(signum: int, frame: Any) -> None:
        if _terminating.is_set():
            _warn(f"{signal.Signals(signum).name} again while stopping: ignored")
            return
        _terminating.set()
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)


# ------------------------------------------------------------------------- step metrics
class _StepQueue:
    """Step metrics sent by a daemon thread: :meth:`put` never blocks (training goes on while the
    store is slow or locked), :meth:`close` flushes with a deadline. The thread retries a locked
    store (``_RETRYABLE``) until the deadline, drops a batch on any other error and prints why."""

    def __init__(self, send: Callable[[list[Any]], Any], max_pending: int = MAX_PENDING_METRICS) -> None:
        self._send = send
        self._max_pending = max_pending
        self._pending: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self.queued = 0
        self.sent = 0
        self._overflowed = False
        self._thread = threading.Thread(target=self._work, name="mlflow-step-metrics", daemon=True)
        self._thread.start()

    def put(self, items: list[Any]) -> None:
        with self._cond:
            self._pending.extend(items)
            self.queued += len(items)
            for _ in range(len(self._pending) - self._max_pending):
                self._pending.popleft()
                if not self._overflowed:
                    self._overflowed = True
                    _warn(f"tracking store unreachable: more than {self._max_pending} step metrics queued, "
                          "dropping the oldest (the metrics file keeps the curves)")  # fmt: skip
            self._cond.notify()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and self._deadline is None:
                    self._cond.wait()
                if not self._pending or self._past_deadline():
                    return
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), _METRICS_PER_BATCH))]
            self._deliver(batch)

    def _deliver(self, batch: list[Any]) -> None:
        delay = 0.05
        while True:
            try:
                self._send(batch)
                self.sent += len(batch)
                return
            except Exception as exc:
                if not _retryable(exc) or self._past_deadline():
                    steps = sorted({m.step for m in batch})
                    _warn(f"{len(batch)} step metrics (steps {steps[0]}-{steps[-1]}) not logged: {exc!r}")
                    return
                wait = delay * (0.5 + random.random())
                if self._deadline is not None:
                    wait = min(wait, max(self._deadline - time.monotonic(), 0.0))
                time.sleep(wait)
                delay = min(delay * 2, 5.0)

    def close(self, timeout: float) -> int:
        """Send what is queued, waiting at most ``timeout`` seconds; returns how many of the queued
        step metrics were not sent (dropped on errors or still queued at the deadline)."""
        with self._cond:
            self._deadline = time.monotonic() + max(timeout, 0.0)
            self._cond.notify_all()
        self._thread.join(max(timeout, 0.0) + 1.0)
        unsent = self.queued - self.sent
        if unsent:
            _warn(f"{unsent} of {self.queued} step metrics not logged (the tracking store was slow, locked or "
                  "failing; the metrics file keeps the curves)")  # fmt: skip
        return unsent


def _run_path(experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI, relative to the UI's address (its links are hash routes)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def _run_link(info: Any) -> str:
    return f"[{info.run_name}]({_run_path(info.experiment_id, info.run_id)})"


def _tag(key: str, value: Any) -> Any:
    """An MLflow ``RunTag`` (mlflow imported only when tracking is on)."""
    from mlflow.entities import RunTag

    return RunTag(key, str(value))


class RunLogger:
    """An open MLflow run (or a no-op one when tracking is off)."""

    def __init__(self, client: Any = None, run_id: str | None = None) -> None:
        self._client = client
        self.run_id = run_id
        self._steps: _StepQueue | None = None

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params as strings; nested keys are joined with dots."""
        if not self.enabled or not params:
            return
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in _flatten(params).items()]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            chunk = items[start : start + _PARAMS_PER_BATCH]
            call_with_retry(lambda chunk=chunk: self._client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the finite numeric entries of ``metrics`` at ``step``; the rest is skipped."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step or 0)) for k, v in _numeric_metrics(metrics).items()]
        for start in range(0, len(items), _METRICS_PER_BATCH):
            chunk = items[start : start + _METRICS_PER_BATCH]
            call_with_retry(lambda chunk=chunk: self._client.log_batch(self.run_id, metrics=chunk))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) the run's tags, as strings."""
        if not self.enabled:
            return
        items = [_tag(k, v) for k, v in tags.items()]
        if items:
            call_with_retry(lambda: self._client.log_batch(self.run_id, tags=items))

    def link_training_run(self, train_run_id: str, rule: str) -> None:
        """This (evaluation) run evaluates the model trained in run ``train_run_id``: tag
        ``train_run_id`` and a link in this run's description; on the training run, the tag
        ``evaluation.<rule>`` = this run and a description linking each of its evaluations. A store
        that refuses is reported, never raised."""
        if not self.enabled or not train_run_id:
            return
        try:
            train = call_with_retry(lambda: self._client.get_run(train_run_id))
            mine = call_with_retry(lambda: self._client.get_run(self.run_id))
            self.set_tags({"train_run_id": train_run_id,
                           NOTE_TAG: f"Evaluates the model trained in run {_run_link(train.info)}."})  # fmt: skip
            evaluations = {k: v for k, v in train.data.tags.items() if k.startswith("evaluation.")}
            evaluations[f"evaluation.{rule}"] = self.run_id
            links = [f"- {k.removeprefix('evaluation.')}: [{v[:8]}]({_run_path(mine.info.experiment_id, v)})"
                     for k, v in sorted(evaluations.items())]  # fmt: skip
            tags = {f"evaluation.{rule}": self.run_id, NOTE_TAG: "\n".join(["Evaluated in:", *links])}
            items = [_tag(k, v) for k, v in tags.items()]
            call_with_retry(lambda: self._client.log_batch(train_run_id, tags=items))
        except Exception as exc:
            _warn(f"could not link MLflow run {self.run_id} to its training run {train_run_id}: {exc!r}")

    def log_step_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue the finite numeric entries of ``metrics`` at ``step`` and return at once: a
        background thread sends them (module docstring); :meth:`close` flushes."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step or 0)) for k, v in _numeric_metrics(metrics).items()]
        if not items:
            return
        if self._steps is None:
            self._steps = _StepQueue(lambda batch: self._client.log_batch(self.run_id, metrics=batch))
        self._steps.put(items)

    def close(self, timeout: float = FLUSH_S) -> int:
        """Flush the queued step metrics (at most ``timeout`` seconds); returns how many were not sent."""
        steps, self._steps = self._steps, None
        return steps.close(timeout) if steps is not None else 0

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file (or directory) into the run's artifacts."""
        if not self.enabled:
            return
        path = os.fspath(path)
        if os.path.isdir(path):
            call_with_retry(lambda: self._client.log_artifacts(self.run_id, path, artifact_path))
        else:
            call_with_retry(lambda: self._client.log_artifact(self.run_id, path, artifact_path))

    def callback(self) -> Any:
        """A transformers callback that queues every ``Trainer.log`` call at the current global step
        (:meth:`log_step_metrics`)."""
        return make_step_callback(self)


@cache
def _step_callback_class() -> type:
    # imported lazily: workflow scripts without a Trainer stay light
    from transformers import TrainerCallback

    class MlflowStepCallback(TrainerCallback):
        """Logs the Trainer's step metrics (loss, learning rate, ``dr/*``, ...) to a RunLogger (rank 0 only)."""

        def __init__(self, run: RunLogger) -> None:
            self.run = run

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                self.run.log_step_metrics(logs, step=state.global_step)
            return control

    return MlflowStepCallback


def make_step_callback(run: RunLogger) -> Any:
    """A ``transformers.TrainerCallback`` logging each ``Trainer.log`` call to ``run`` at ``state.global_step``."""
    return _step_callback_class()(run)


@contextlib.contextmanager
def _schema_lock(uri: str) -> Iterator[None]:
    """Serialise MLflow's schema creation/migration on a SQLite file across processes (flock)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db_path = os.path.abspath(uri[len("sqlite:///") :])
    os.makedirs(os.path.dirname(db_path), exist_ok=True)
    with open(db_path + ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _absolute_sqlite(uri: str) -> str:
    """A relative SQLite URI made absolute (from the working directory): MLflow keeps one engine
    per URI string in a process, so a relative one would reach the file of an earlier directory."""
    if uri.startswith("sqlite:///") and not os.path.isabs(uri[len("sqlite:///") :]):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///") :])
    return uri


def _open_client(uri: str) -> Any:
    """An ``MlflowClient`` whose store (and, for a new SQLite file, its tables) exists."""
    from mlflow.tracking import MlflowClient

    def attempt() -> Any:
        with _schema_lock(uri):
            client = MlflowClient(tracking_uri=_absolute_sqlite(uri))
            client.search_experiments(max_results=1)  # forces store creation / migration under the lock
            return client

    return call_with_retry(attempt)


def _get_or_create_experiment(client: Any, uri: str, name: str) -> str:
    """The experiment ``name`` (created if needed, serialised across processes by the store's lock),
    of the model-training kind (:data:`EXPERIMENT_KIND`, set on older experiments too)."""
    location = _sqlite_artifact_location(uri, name)

    def attempt() -> str:
        found = client.get_experiment_by_name(name)
        if found is not None and found.tags.get(EXPERIMENT_KIND[0]) == EXPERIMENT_KIND[1]:
            return found.experiment_id
        with _schema_lock(uri):
            found = client.get_experiment_by_name(name)
            if found is not None:
                client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
                return found.experiment_id
            experiment_id = client.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
            if location is not None and not os.path.isabs(location):
                _keep_relative_location(client, experiment_id, location)
            return experiment_id

    return call_with_retry(attempt)


def _keep_relative_location(client: Any, experiment_id: str, location: str) -> None:
    """Store ``location`` as given: MLflow's SQL store makes a new experiment's location absolute
    (``resolve_uri_if_local``); its runs' artifact URIs are then relative to the working directory."""
    from mlflow.store.tracking.dbmodels.models import SqlExperiment

    store = client._tracking_client.store
    with store.ManagedSessionMaker() as session:
        query = session.query(SqlExperiment).filter(SqlExperiment.experiment_id == int(experiment_id))
        query.update({"artifact_location": location})


def resume_run_id(path: str | os.PathLike[str]) -> str | None:
    """The MLflow run id that :func:`mlflow_run` wrote to ``path`` (its ``run_file``) when it opened
    a run and removes once the run FINISHED: the run a job started again should continue. None when
    there is no such file (or it is empty)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def _end_run(client: Any, run_id: str, status: str) -> None:
    """Mark the run ``status``; a store that refuses is reported, never raised (it would replace the
    job's own exception, or fail a job whose outputs are written)."""
    try:
        call_with_retry(lambda: client.set_terminated(run_id, status=status))
    except Exception as exc:
        _warn(f"could not mark MLflow run {run_id} {status}: {exc!r}")


def _continue_run(client: Any, run_id: str, experiment_id: str, params: dict[str, str]) -> dict[str, str] | None:
    """Reopen ``run_id`` (status RUNNING, tag ``resumed`` counting the reopenings) when it exists in
    ``experiment_id``, is not FINISHED and none of ``params`` changed; returns the params it still
    lacks, or None when it cannot be continued (a RUNNING one is then marked KILLED: orphaned)."""
    try:
        run = call_with_retry(lambda: client.get_run(run_id))
    except Exception as exc:
        _warn(f"previous MLflow run {run_id} not found ({exc.__class__.__name__}); starting a new run")
        return None
    info = run.info
    changed = sorted(k for k, v in params.items() if k in run.data.params and run.data.params[k] != v)
    if info.experiment_id != experiment_id or info.status == "FINISHED" or info.lifecycle_stage != "active" or changed:
        if info.status == "RUNNING":
            _end_run(client, run_id, "KILLED")
        if changed:
            _warn(f"not continuing MLflow run {run_id}: params changed ({changed[:5]}); starting a new run")
        return None
    call_with_retry(lambda: client.update_run(run_id, status="RUNNING"))
    resumed = int(run.data.tags.get("resumed", "0") or 0) + 1
    call_with_retry(lambda: client.set_tag(run_id, "resumed", str(resumed)))
    print(f"[tracking] continuing MLflow run {run_id} (was {info.status}, reopened {resumed} time(s))", flush=True)
    return {k: v for k, v in params.items() if k not in run.data.params}


def experiment_url(uri: str, experiment: str, address: str) -> str | None:
    """The UI address of ``experiment``'s runs list (``<address>/#/experiments/<id>``, with MLflow
    3's workflow switch on "Model training"), or None when the store has no such experiment."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri=_absolute_sqlite(uri)).get_experiment_by_name(experiment)
    if found is None:
        return None
    return f"{address.rstrip('/')}/#/experiments/{found.experiment_id}?workflowType=machine_learning"


def supersede(client: Any, experiment_id: str, run_id: str, job: str) -> list[str]:
    """Every other active run of ``job`` (tag :data:`JOB_TAG`) in the experiment gets the tag
    ``superseded_by`` = ``run_id`` and is deleted (MLflow's soft delete: ``mlflow runs restore
    --run-id`` brings it back, ``mlflow gc`` removes it), so the experiment's runs hold one run per
    job: the one whose outputs the tables read. Returns the superseded run ids; a store that refuses
    is reported, never raised (the job's outputs are written)."""
    from mlflow.entities import ViewType

    quoted = job.replace("\\", "\\\\").replace("'", "\\'")
    try:
        runs = call_with_retry(lambda: client.search_runs([experiment_id], f"tags.{JOB_TAG} = '{quoted}'",
                                                          ViewType.ACTIVE_ONLY, max_results=1000))  # fmt: skip
        old = [r.info.run_id for r in runs if r.info.run_id != run_id]
        for other in old:
            call_with_retry(lambda other=other: client.set_tag(other, "superseded_by", run_id))
            call_with_retry(lambda other=other: client.delete_run(other))
    except Exception as exc:
        _warn(f"could not mark the earlier MLflow runs of {job} superseded: {exc!r}")
        return []
    if old:
        print(f"[tracking] run {run_id} supersedes the earlier run(s) {', '.join(old)} of {job}", flush=True)
    return old


@contextlib.contextmanager
def mlflow_run(
    experiment: str,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_file: str | os.PathLike[str] | None = None,
    job: str | None = None,
) -> Iterator[RunLogger]:
    """Open an MLflow run in ``experiment`` (created if needed); a no-op logger when tracking is off.

    The run ends FINISHED, FAILED when the body raises, KILLED on :class:`Terminated` (SIGTERM, see
    :func:`raise_on_sigterm`) or ``KeyboardInterrupt``; the exception propagates. Buffered step
    metrics are flushed first. With ``run_file``, a run named there that is not FINISHED is
    continued instead of opening a new one (module docstring, :func:`resume_run_id`). With ``job``
    (the job's identity, tag :data:`JOB_TAG`), a FINISHED run supersedes the other runs of that job
    (:func:`supersede`).
    """
    uri = resolve_tracking_uri(tracking_uri)
    if uri is None:
        yield RunLogger()
        return
    if not experiment or not run_name:
        raise ValueError(f"mlflow_run needs a non-empty experiment and run_name, got {experiment!r}, {run_name!r}")
    client = _open_client(uri)
    experiment_id = _get_or_create_experiment(client, uri, experiment)
    flat = _flatten(params or {})
    previous = resume_run_id(run_file) if run_file is not None else None
    missing = _continue_run(client, previous, experiment_id, flat) if previous else None
    if missing is None:
        run_tags = {k: str(v) for k, v in (tags or {}).items()} | ({JOB_TAG: job} if job else {})
        if previous:
            run_tags["previous_run_id"] = previous
        run = call_with_retry(lambda: client.create_run(experiment_id, run_name=run_name, tags=run_tags))
        run_id, missing = run.info.run_id, flat
    else:
        run_id = previous
    if run_file is not None:
        from core.atomic import atomic_write_text

        atomic_write_text(run_file, run_id + "\n")
    logger = RunLogger(client, run_id)
    status = "FAILED"
    try:
        logger.log_params(missing)
        yield logger
        status = "FINISHED"
    except (Terminated, KeyboardInterrupt):
        status = "KILLED"
        raise
    finally:
        logger.close(KILLED_FLUSH_S if status == "KILLED" else FLUSH_S)
        _end_run(client, run_id, status)
        if status == "FINISHED" and job:
            supersede(client, experiment_id, run_id, job)
        if status == "FINISHED" and run_file is not None:
            Path(run_file).unlink(missing_ok=True)
