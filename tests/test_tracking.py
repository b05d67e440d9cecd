"""core.tracking: no-op without a tracking URI; SQLite tracking shared by parallel processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from trainer_helpers import reward_trainer

from core.tracking import call_with_retry, mlflow_run, resolve_tracking_uri

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_noop_without_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() is None
    with mlflow_run("exp", "run", {"a": 1}) as run:
        assert not run.enabled and run.run_id is None
        run.log_params({"b": 2})
        run.log_metrics({"loss": 1.0}, step=1)
        run.log_artifact(tmp_path / "absent.txt")
        state = SimpleNamespace(is_world_process_zero=True, global_step=1)
        run.callback().on_log(None, state, None, logs={"loss": 1.0})
    assert list(tmp_path.iterdir()) == []  # nothing written (no ./mlruns)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert resolve_tracking_uri() == "sqlite:///x.db"
    assert resolve_tracking_uri("sqlite:///y.db") == "sqlite:///y.db"


def test_retry_on_database_locked_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert call_with_retry(flaky, base_delay=0.001) == "ok" and len(calls) == 3

    def broken():
        calls.append(1)
        raise RuntimeError("no route to host")

    calls.clear()
    with pytest.raises(RuntimeError, match="no route"):
        call_with_retry(broken, base_delay=0.001)
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(RuntimeError, match="locked"):
        call_with_retry(lambda: calls.append(1) or flaky_forever(), attempts=3, base_delay=0.001)
    assert len(calls) == 3


def flaky_forever():
    raise RuntimeError("database is locked")


WRITER = textwrap.dedent(
    """
    import sys
    from core.tracking import mlflow_run
    with mlflow_run("shared", f"writer{sys.argv[2]}", {"writer": sys.argv[2]}, tracking_uri=sys.argv[1]) as run:
        for step in range(5):
            run.log_metrics({"value": step * 1.5}, step=step)
    """
)


@pytest.mark.slow
def test_sqlite_tracking_with_parallel_processes_and_trainer(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    writers = [subprocess.Popen([sys.executable, str(script), uri, "0"], env=env, stderr=subprocess.PIPE, text=True)]
    with mlflow_run("shared", "dr-reward", {"rho": 0.3, "model": {"layers": 2}}, tracking_uri=uri) as run:
        trainer = reward_trainer(tmp_path / "out", divergence="tv", rho=0.3, max_steps=2, callbacks=[run.callback()])
        trainer.train()
        note = tmp_path / "note.txt"
        note.write_text("hello")
        run.log_artifact(note)
    for proc in writers:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    with (
        pytest.raises(RuntimeError, match="body failed"),
        mlflow_run("shared", "failing", tracking_uri=uri),
    ):
        raise RuntimeError("body failed")

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("shared")
    assert experiment.artifact_location.startswith("file://" + str(tmp_path / "results" / "mlartifacts"))
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"writer0", "dr-reward", "failing"}
    assert runs["failing"].info.status == "FAILED"
    ours = runs["dr-reward"]
    assert ours.info.status == "FINISHED" and ours.data.params["model.layers"] == "2"
    history = client.get_metric_history(ours.info.run_id, "dr/robust_loss")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([r["robust_loss"] for r in trainer.robust_history], rel=1e-4)
    assert [a.path for a in client.list_artifacts(ours.info.run_id)] == ["note.txt"]
    values = client.get_metric_history(runs["writer0"].info.run_id, "value")
    assert sorted((m.step, m.value) for m in values) == [(s, s * 1.5) for s in range(5)]
