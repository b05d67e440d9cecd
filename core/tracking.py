"""MLflow helpers for the trainers and the workflow (docs/design.md §5: tracking URI from the config).

``mlflow_run(experiment, run_name, params, tracking_uri=None)`` opens one MLflow run and yields
a :class:`RunLogger` (params, step metrics, artifacts, and ``callback()`` for a transformers
``Trainer``).  The tracking URI is the argument, else ``MLFLOW_TRACKING_URI``; with neither, the
run is a no-op and mlflow is never imported, so everything works without MLflow configured.

SQLite backends (``sqlite:///results/mlflow.db``) are shared by parallel Snakemake jobs: every
MLflow call is retried with jittered exponential backoff on SQLite's "database is locked" and on
the races of two processes creating the schema or the same experiment at once.  Artifacts of a
SQLite-backed experiment go to ``<db dir>/mlartifacts/<experiment>`` (not the working directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, TypeVar

__all__ = [
    "RunLogger",
    "call_with_retry",
    "make_step_callback",
    "mlflow_run",
    "resolve_tracking_uri",
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
            message = str(exc).lower()
            if attempt == attempts - 1 or not any(marker in message for marker in _RETRYABLE):
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
    if not uri.startswith("sqlite:///"):
        return None
    db_path = uri[len("sqlite:///") :]
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment) or "default"
    root = os.path.join(os.path.dirname(os.path.abspath(db_path)), "mlartifacts", folder)
    return "file://" + root


class RunLogger:
    """An open MLflow run (or a no-op one when tracking is off)."""

    def __init__(self, client: Any = None, run_id: str | None = None) -> None:
        self._client = client
        self.run_id = run_id

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

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file (or directory) into the run's artifacts."""
        if not self.enabled:
            return
        path = os.fspath(path)
        if os.path.isdir(path):
            call_with_retry(lambda: self._client.log_artifacts(self.run_id, path, artifact_path))
        else:
            call_with_retry(lambda: self._client.log_artifact(self.run_id, path, artifact_path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        for key, value in tags.items():
            call_with_retry(lambda key=key, value=value: self._client.set_tag(self.run_id, key, str(value)))

    def callback(self) -> Any:
        """A transformers callback that logs every ``Trainer.log`` call at the current global step."""
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
                self.run.log_metrics(logs, step=state.global_step)
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


def _open_client(uri: str) -> Any:
    """An ``MlflowClient`` whose store (and, for a new SQLite file, its tables) exists."""
    from mlflow.tracking import MlflowClient

    def attempt() -> Any:
        with _schema_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # forces store creation / migration under the lock
            return client

    return call_with_retry(attempt)


def _get_or_create_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    def attempt() -> str:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(name, artifact_location=artifact_location)

    return call_with_retry(attempt)


@contextlib.contextmanager
def mlflow_run(
    experiment: str,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[RunLogger]:
    """Open an MLflow run in ``experiment`` (created if needed); a no-op logger when tracking is off.

    The run ends FINISHED, or FAILED when the body raises (the exception propagates).
    """
    uri = resolve_tracking_uri(tracking_uri)
    if uri is None:
        yield RunLogger()
        return
    if not experiment or not run_name:
        raise ValueError(f"mlflow_run needs a non-empty experiment and run_name, got {experiment!r}, {run_name!r}")
    client = _open_client(uri)
    experiment_id = _get_or_create_experiment(client, experiment, _sqlite_artifact_location(uri, experiment))
    run = call_with_retry(
        lambda: client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()})
    )
    logger = RunLogger(client, run.info.run_id)
    status = "FAILED"
    try:
        logger.log_params(params or {})
        yield logger
        status = "FINISHED"
    finally:
        call_with_retry(lambda: client.set_terminated(logger.run_id, status=status))
