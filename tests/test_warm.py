"""The warm-start server (core.jobs.warm): a job forked from it runs as a cold job
process would — same numbers bit for bit, its own folder, environment, log and exit status — and
stops like one: SIGTERM to the waiting job process reaches it, and it stops when that process is
killed. With no server a job runs cold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.jobs.job import Job
from core.jobs.warm import WarmServer, run_warm, start_server

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    '''
    """A toy workflow script: a few seeded torch steps, what it saw, and its failure modes."""
    import os
    import time

    from core.jobs.launch import entrypoint


    def main(job):
        import torch
        from safetensors.torch import save_file

        mode = job.params["mode"]
        if mode == "fail":
            raise ValueError("bad row 7 in the toy data")
        if mode == "wait":
            open(job.output["started"], "w").write(str(os.getpid()))
            while True:
                time.sleep(0.05)
        torch.manual_seed(int(job.params["seed"]))
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        x, y = torch.randn(64, 16), torch.randn(64, 1)
        for _ in range(20):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, job.output["weights"])
        seen = [os.getcwd(), os.environ.get("TOY_MARKER", ""), str(torch.get_num_threads())]
        open(job.output["seen"], "w").write("\\n".join(seen))
        print("toy job done", flush=True)


    if __name__ == "__main__":
        entrypoint(main, globals())
    '''
)


def _script_main(job):
    raise AssertionError("runs in the server's child, from the job's script")


# the script's own ``main`` as entrypoint sees it when Snakemake runs the script (module __main__)
_script_main.__module__, _script_main.__qualname__ = "__main__", "main"
SCRIPT_MAIN = _script_main


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module's tests (its imports take a few CPU-seconds)."""
    tmp = tmp_path_factory.mktemp("warm")
    srv = WarmServer(str(tmp / "warm.log"))
    os.environ.pop("ROBUST_RLHF_WARM", None)  # the tests name the address themselves
    deadline = time.time() + 120
    while not os.path.exists(srv.address):
        assert srv.proc.poll() is None, (tmp / "warm.log").read_text()
        assert time.time() < deadline, "the warm-start server did not listen within 120 s"
        time.sleep(0.1)
    yield srv
    srv.stop()
    assert srv.proc.returncode == 0 and not os.path.exists(srv.address)
    assert "[warm] stopped" in (tmp / "warm.log").read_text()


def toy_job(tmp: Path, mode: str = "train", seed: int = 3) -> Job:
    script = tmp / "toy.py"
    script.write_text(SCRIPT)
    out = {k: str(tmp / f"{k}.out") for k in ("weights", "seen", "started")}
    return Job(rule="toy", input={}, output=out, params={"mode": mode, "seed": seed}, wildcards={},
               log=[str(tmp / "toy.log")], threads=1, script=str(script))  # fmt: skip


def cold(job: Job, tmp: Path) -> subprocess.CompletedProcess:
    """The job in a fresh process (the cold path: `--job JOB.json`)."""
    spec = tmp / "job.json"
    job.to_json(str(spec))
    env = dict(os.environ, TOY_MARKER="cold")
    env.pop("ROBUST_RLHF_WARM", None)
    return subprocess.run([sys.executable, job.script, "--job", str(spec)], cwd=tmp, env=env, timeout=300)


def in_folder(folder: Path, **env: str):
    """Run the client from ``folder`` with ``env`` set, as Snakemake's job process would."""

    class _Ctx:
        def __enter__(self):
            self.cwd, self.env = os.getcwd(), dict(os.environ)
            os.chdir(folder)
            os.environ.update(env)

        def __exit__(self, *exc):
            os.chdir(self.cwd)
            os.environ.clear()
            os.environ.update(self.env)

    return _Ctx()


def test_a_warm_job_computes_what_a_cold_one_does(server, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "w").mkdir()
    assert cold(toy_job(tmp_path / "c"), tmp_path / "c").returncode == 0
    job = toy_job(tmp_path / "w")
    with in_folder(tmp_path / "w", TOY_MARKER="warm"):
        assert run_warm(job, SCRIPT_MAIN, server.address) == 0
    assert (tmp_path / "w" / "weights.out").read_bytes() == (tmp_path / "c" / "weights.out").read_bytes()
    seen_cold = (tmp_path / "c" / "seen.out").read_text().splitlines()
    seen_warm = (tmp_path / "w" / "seen.out").read_text().splitlines()
    # its own folder and environment; torch limited to the job's threads, as cold
    assert seen_warm == [str(tmp_path / "w"), "warm", "1"] and seen_cold == [str(tmp_path / "c"), "cold", "1"]
    log = (tmp_path / "w" / "toy.log").read_text()
    assert "toy job done" in log and "[workflow] toy rank 0 done in" in log
    other = toy_job(tmp_path / "w", seed=4)  # a second job from the same server: its own numbers
    with in_folder(tmp_path / "w"):
        assert run_warm(other, SCRIPT_MAIN, server.address) == 0
    assert (tmp_path / "w" / "weights.out").read_bytes() != (tmp_path / "c" / "weights.out").read_bytes()


def test_a_failing_warm_job_returns_its_status_and_logs_the_error(server, tmp_path):
    job = toy_job(tmp_path, "fail")
    with in_folder(tmp_path):
        assert run_warm(job, SCRIPT_MAIN, server.address) == 1
    log = (tmp_path / "toy.log").read_text()
    assert "ValueError: bad row 7 in the toy data" in log and "Traceback" in log


CLIENT = textwrap.dedent(
    """
    import sys
    from core.jobs.job import Job
    from core.jobs.warm import run_warm

    def main(job):  # stands for the script's own main (module __main__), which the server loads
        raise AssertionError("runs in the server's child")

    sys.exit(run_warm(Job.from_json(sys.argv[1]), main, sys.argv[2]))
    """
)


def _waiting_client(server, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    job = toy_job(tmp_path, "wait")
    job.to_json(str(tmp_path / "job.json"))
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(tmp_path / "job.json"), server.address], cwd=tmp_path)
    started = Path(job.output["started"])
    deadline = time.time() + 60
    while not (started.exists() and started.read_text()):
        assert client.poll() is None and time.time() < deadline, "the waiting job did not start"
        time.sleep(0.05)
    return client, int(started.read_text())


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_to_the_job_process_stops_its_warm_child_like_a_cold_job(server, tmp_path):
    client, child = _waiting_client(server, tmp_path)
    assert child != client.pid
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=60) == 128 + signal.SIGTERM  # the child's status: stopped by SIGTERM
    assert _gone(child)
    assert "stopped: " in (tmp_path / "toy.log").read_text()


def test_a_killed_job_process_takes_its_warm_child_down(server, tmp_path):
    client, child = _waiting_client(server, tmp_path)
    client.kill()
    client.wait(timeout=30)
    assert _gone(child), "the warm child outlived its killed job process"


def test_a_request_the_server_refuses_runs_cold(tmp_path):
    """A server that answers but starts no child (here: one that closes every connection) leaves
    the job to run in its own process; nothing ran, so nothing runs twice."""
    import socket
    import threading

    address = str(tmp_path / "refusing.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)

    def refuse() -> None:
        conn, _ = listener.accept()
        conn.recv(1 << 16)
        conn.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    try:
        assert run_warm(toy_job(tmp_path), SCRIPT_MAIN, address) is None
    finally:
        thread.join(timeout=10)
        listener.close()
    assert not (tmp_path / "weights.out").exists()


def test_without_a_server_the_job_runs_cold(tmp_path):
    job = toy_job(tmp_path)
    assert run_warm(job, SCRIPT_MAIN, str(tmp_path / "nobody.sock")) is None
    os.environ.pop("ROBUST_RLHF_WARM", None)
    assert run_warm(job, SCRIPT_MAIN) is None
    assert start_server(False, "local", str(tmp_path / "w.log")) is None
    assert start_server(True, "slurm", str(tmp_path / "w.log")) is None  # jobs run on other machines


HEAVY = ("torch", "transformers", "trl", "datasets", "mlflow", "pandas")


def test_a_job_process_that_passes_its_job_on_imports_nothing_heavy():
    """Every workflow script's module-level imports (what its job process runs before handing the
    job to the server) leave torch, transformers, trl, datasets, mlflow and pandas unimported: the
    server imported them once, a job process importing them would pay the cold start again."""
    probe = textwrap.dedent(
        """
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("probe", sys.argv[1])
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:])))
        """
    )
    heavy = {}
    for script in sorted((REPO / "workflow_scripts").glob("*.py")):
        out = subprocess.run([sys.executable, "-c", probe, str(script), *HEAVY], capture_output=True, text=True,
                             cwd=REPO, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        if out.stdout.strip() != "[]":
            heavy[script.name] = out.stdout.strip()[:200]
    assert not heavy, heavy
