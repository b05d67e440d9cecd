"""core.tracking: no-op without a tracking URI; SQLite tracking shared by parallel processes; step
metrics buffered (a slow, locked or failing store never stalls or crashes training); runs end
KILLED on SIGTERM and are continued by the job's next try."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from trainer_helpers import reward_trainer

from core.tracking import RunLogger, Terminated, call_with_retry, mlflow_run, resolve_tracking_uri, resume_run_id

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
    assert experiment.artifact_location == str(tmp_path / "results" / "mlartifacts" / "shared")  # absolute store
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


# ------------------------------------------------------------------ what a researcher sees
def test_an_experiment_opens_on_its_runs_and_keeps_artifacts_relative(tmp_path, monkeypatch):
    """The experiment is of MLflow 3's model-training kind (also one created before); a relative
    store keeps relative artifact locations, so a copied results/ finds its artifacts."""
    import shutil

    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = "sqlite:///results/mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}").create_experiment(
        "older"
    )  # no kind tag
    for name in ("shared", "older"):
        with mlflow_run(name, "one", tracking_uri=uri) as run:
            (tmp_path / "note.txt").write_text("hello")
            run.log_artifact(tmp_path / "note.txt")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    for name in ("shared", "older"):
        assert client.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"
    experiment = client.get_experiment_by_name("shared")
    assert experiment.artifact_location == "results/mlartifacts/shared"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.artifact_uri == f"results/mlartifacts/shared/{run.info.run_id}/artifacts"
    shutil.copytree(tmp_path / "results", tmp_path / "copy" / "results")
    shutil.rmtree(tmp_path / "results")
    monkeypatch.chdir(tmp_path / "copy")
    moved = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'copy' / 'results' / 'mlflow.db'}")  # the copy's
    assert [a.path for a in moved.list_artifacts(run.info.run_id)] == ["note.txt"]
    assert Path(moved.download_artifacts(run.info.run_id, "note.txt", str(tmp_path))).read_text() == "hello"


def test_a_finished_rerun_supersedes_the_earlier_runs_of_its_job(tmp_path):
    """Forcing a job again: its earlier run gets superseded_by and leaves the active runs, so a
    filter returns one run per job; another job's run is untouched, and a failed rerun supersedes nothing."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = {}
    for name, job in (("first", "r[seed=0]"), ("other", "r[seed=1]"), ("second", "r[seed=0]")):
        with mlflow_run("exp", name, tracking_uri=uri, job=job) as run:
            ids[name] = run.run_id
    with pytest.raises(RuntimeError), mlflow_run("exp", "failed", tracking_uri=uri, job="r[seed=0]") as run:
        ids["failed"] = run.run_id
        raise RuntimeError("boom")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("exp").experiment_id
    active = {
        r.info.run_name
        for r in client.search_runs([experiment], "tags.job = 'r[seed=0]' and attributes.status = 'FINISHED'")
    }
    assert active == {"second"}
    old = client.get_run(ids["first"])
    assert old.info.lifecycle_stage == "deleted" and old.data.tags["superseded_by"] == ids["second"]
    assert client.get_run(ids["other"]).info.lifecycle_stage == "active"
    assert client.get_run(ids["failed"]).info.lifecycle_stage == "active"  # not finished: supersedes nothing
    deleted = client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids["first"]]


def test_an_evaluation_run_links_its_training_run_both_ways(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_run("exp", "rm tv ρ=0.2 s0", tracking_uri=uri) as train:
        pass
    ids = {}
    for rule in ("eval_rm_dr", "eval_other"):
        with mlflow_run("exp", f"{rule} s0", tracking_uri=uri) as run:
            run.link_training_run(train.run_id, rule)
            ids[rule] = run.run_id
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("exp").experiment_id
    evaluation = client.get_run(ids["eval_other"]).data.tags
    assert evaluation["train_run_id"] == train.run_id
    assert f"[rm tv ρ=0.2 s0](#/experiments/{experiment}/runs/{train.run_id})" in evaluation["mlflow.note.content"]
    trained = client.get_run(train.run_id).data.tags
    assert (
        trained["evaluation.eval_rm_dr"] == ids["eval_rm_dr"] and trained["evaluation.eval_other"] == ids["eval_other"]
    )
    for rule, run_id in ids.items():  # the training run's description links each of its evaluations
        assert f"- {rule}: [{run_id[:8]}](#/experiments/{experiment}/runs/{run_id})" in trained["mlflow.note.content"]


# ------------------------------------------------------------------ buffered step metrics
class _Store:
    """A fake MlflowClient whose log_batch sleeps, fails or reports a lock, as asked."""

    def __init__(self, sleep: float = 0.0, fail: str | None = None, locked_for: float = 0.0) -> None:
        self.sleep, self.fail, self.locked_until = sleep, fail, time.monotonic() + locked_for
        self.logged: list = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        if time.monotonic() < self.locked_until:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        if self.fail:
            raise RuntimeError(self.fail)
        time.sleep(self.sleep)
        self.logged.extend(metrics)


def test_step_metrics_never_stall_training_and_are_all_sent_at_the_end():
    store = _Store(sleep=0.5)
    run = RunLogger(store, "run")
    state = SimpleNamespace(is_world_process_zero=True, global_step=0)
    start = time.monotonic()
    for step in range(1, 21):
        state.global_step = step
        run.callback().on_log(None, state, None, logs={"loss": 1.0 / step, "nan": float("nan")})
    assert time.monotonic() - start < 0.4  # 20 log calls against a store taking 0.5 s per call
    assert run.close(timeout=30) == 0
    assert sorted(m.step for m in store.logged) == list(range(1, 21)) and {m.key for m in store.logged} == {"loss"}


def test_a_locked_store_is_waited_for_in_the_background(capsys):
    """Locked for 3 s (more than call_with_retry's budget of a synchronous call would be fine too):
    the training side returns at once, the thread retries until the lock is gone."""
    store = _Store(locked_for=3.0)
    run = RunLogger(store, "run")
    start = time.monotonic()
    for step in range(5):
        run.log_step_metrics({"loss": float(step)}, step=step)
    assert time.monotonic() - start < 0.2
    assert run.close(timeout=30) == 0 and len(store.logged) == 5
    assert "WARNING" not in capsys.readouterr().err


def test_errors_of_the_background_logger_are_printed_never_raised(capsys):
    run = RunLogger(_Store(fail="store exploded"), "run")
    run.log_step_metrics({"loss": 1.0}, step=3)
    assert run.close(timeout=5) == 1
    err = capsys.readouterr().err
    assert "step metrics (steps 3-3) not logged" in err and "store exploded" in err
    still_locked = RunLogger(_Store(locked_for=60), "run")
    still_locked.log_step_metrics({"loss": 1.0}, step=1)
    start = time.monotonic()
    assert still_locked.close(timeout=0.5) == 1 and time.monotonic() - start < 5  # the deadline holds
    assert "1 of 1 step metrics not logged" in capsys.readouterr().err


def test_a_slow_sqlite_store_does_not_slow_the_trainer_callback(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    real = MlflowClient.log_batch

    def slow(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        if metrics:
            time.sleep(0.3)
        return real(self, run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(MlflowClient, "log_batch", slow)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state = SimpleNamespace(is_world_process_zero=True, global_step=0)
    with mlflow_run("slow", "run", {"a": 1}, tracking_uri=uri) as run:
        callback, start = run.callback(), time.monotonic()
        for step in range(1, 11):
            state.global_step = step
            callback.on_log(None, state, None, logs={"loss": float(step)})
        assert time.monotonic() - start < 0.25
    history = MlflowClient(tracking_uri=uri).get_metric_history(run.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, float(s)) for s in range(1, 11)]


# ------------------------------------------------------------------ status, resuming
def _status(uri: str, run_id: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri).get_run(run_id)


def test_a_run_left_unfinished_is_continued_by_the_next_try(tmp_path):
    uri, run_file = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "model.mlflow_run"
    assert resume_run_id(run_file) is None
    with pytest.raises(RuntimeError, match="first try"), mlflow_run("e", "job", {"lr": 1}, uri, run_file=run_file) as a:
        a.log_step_metrics({"loss": 2.0}, step=1)
        raise RuntimeError("first try")
    assert _status(uri, a.run_id).info.status == "FAILED" and resume_run_id(run_file) == a.run_id

    with pytest.raises(KeyboardInterrupt), mlflow_run("e", "job", {"lr": 1}, uri, run_file=run_file) as b:
        raise KeyboardInterrupt
    assert b.run_id == a.run_id and _status(uri, a.run_id).info.status == "KILLED"

    with mlflow_run("e", "job", {"lr": 1, "extra": 2}, uri, run_file=run_file) as c:
        c.log_step_metrics({"loss": 1.0}, step=2)
    run = _status(uri, a.run_id)
    assert c.run_id == a.run_id and run.info.status == "FINISHED" and run.data.tags["resumed"] == "2"
    assert run.data.params == {"lr": "1", "extra": "2"} and not run_file.exists()

    # a stale file naming a FINISHED run, or a run with other params: a new run, tagged with the old one
    run_file.write_text(a.run_id)
    with mlflow_run("e", "job", {"lr": 1}, uri, run_file=run_file) as d:
        pass
    assert d.run_id != a.run_id and _status(uri, d.run_id).data.tags["previous_run_id"] == a.run_id
    with pytest.raises(Terminated), mlflow_run("e", "job", {"lr": 1}, uri, run_file=run_file) as e:
        raise Terminated()
    assert _status(uri, e.run_id).info.status == "KILLED"
    with mlflow_run("e", "job", {"lr": 3}, uri, run_file=run_file) as f:
        pass
    assert f.run_id != e.run_id and _status(uri, f.run_id).data.tags["previous_run_id"] == e.run_id


JOB_SCRIPT = textwrap.dedent(
    """
    import os, pathlib, time
    from core.jobs.launch import entrypoint
    from core.jobs.metrics import tracked_run

    def main(job):
        with tracked_run(job) as run:
            run.log_step_metrics({"loss": 1.0}, step=1)
            if os.environ.get("HANG"):
                pathlib.Path(os.environ["HANG"]).write_text(run.run_id)
                time.sleep(120)
            run.log_step_metrics({"loss": 0.5}, step=2)

    if __name__ == "__main__":
        entrypoint(main, globals())
    """
)


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_and_the_next_try_continues_it(tmp_path):
    """SLURM's time limit and scancel send SIGTERM: the job exits 143 and its run is KILLED (not
    RUNNING forever); the job's next try continues the same run id and FINISHES it."""
    from core.jobs.job import Job

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script, spec, ready = tmp_path / "job.py", tmp_path / "job.json", tmp_path / "ready"
    script.write_text(JOB_SCRIPT)
    out = tmp_path / "results" / "metrics.json"
    Job(rule="train", input={}, output={"metrics": str(out)}, params={"tracking": {"uri": uri, "experiment": "e"}},
        wildcards={"seed": "0"}, log=[str(tmp_path / "job.log")], script=str(script)).to_json(str(spec))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), "--job", str(spec)], env={**env, "HANG": str(ready)})
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready.exists(), (tmp_path / "job.log").read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    run_id = ready.read_text()
    run = _status(uri, run_id)
    assert run.info.status == "KILLED", (tmp_path / "job.log").read_text()[-3000:]
    assert "stopped: terminated by SIGTERM" in (tmp_path / "job.log").read_text()
    assert resume_run_id(f"{out}.mlflow_run") == run_id

    again = subprocess.run([sys.executable, str(script), "--job", str(spec)], env=env, timeout=120)
    assert again.returncode == 0, (tmp_path / "job.log").read_text()[-3000:]
    run = _status(uri, run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "1"
    assert not os.path.exists(f"{out}.mlflow_run")
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 1, 2]  # both tries' steps in the one run


def test_run_names_lead_with_what_tells_runs_apart():
    from core.jobs.metrics import run_title

    wc = {"variant": "unfiltered", "div": "tv", "rho": "0.2", "seed": "3"}
    assert run_title("train_rm_dr", wc) == "rm tv ρ=0.2 s3 unfiltered"
    assert run_title("eval_rm_dr", {**wc, "rmset": "rm"}) == "eval rm tv ρ=0.2 s3 unfiltered"  # the default set
    assert run_title("train_rm_dr", {**wc, "rmset": "rm_ppo"}) == "rm rm_ppo tv ρ=0.2 s3 unfiltered"
    assert run_title("eval_ppo", {**wc, "version": "vA"}) == "eval ppo vA tv ρ=0.2 s3 unfiltered"
    distill = {"method": "edpo", "bias": "0.3", "beta": "0.1", "gamma": "anneal", "seed": "0"}
    assert run_title("train_distill_policy", distill) == "distill edpo bias=0.3 β=0.1 anneal s0"
    assert run_title("sft", {}) == "sft" and run_title("table", {"name": "table1"}) == "table table1"
    assert run_title("train_x", {"zeta": "1"}) == "x zeta=1"
