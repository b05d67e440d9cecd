"""A warm start for the workflow's jobs on one machine: a server process imports torch,
transformers, trl, datasets and mlflow once, then forks one child per job (a cold job
process spends ~6 CPU-seconds on those imports before any work).

Snakemake still runs every job as its own process (the ``script:`` directive); that process is
a thin client (:func:`run_warm`): it sends its :class:`~core.jobs.job.Job`, working folder,
environment and stdout/stderr to the server and waits. The server forks; the child runs the job
exactly as a cold process would (:func:`core.jobs.run.run_job`: log, threads, seeds, SIGTERM)
and its exit status becomes the client's. The fork copies imported modules and nothing else (the
server runs no torch op, holds no model, data or MLflow run), so a job's numbers are a cold
start's (tests/test_warm.py).

Stopping: SIGTERM to a client is passed on to its child; a client that dies (SIGKILL) closes its
connection, and the child then stops as on SIGTERM. The server lives in Snakemake's process group
(Ctrl-C and a kill of the group reach it and its children), exits when Snakemake ends, and is
started and stopped by the workflow (rules/common.smk, config key ``resources.warm_start``; local
runs only). A job runs cold whenever no server answers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from core.jobs.job import Job
from core.jobs.run import run_job

#: the environment variable that tells a job process where the server listens
WARM_ENV = "ROBUST_RLHF_WARM"
#: what the server imports before it forks (the modules every training / evaluation job needs)
PRELOAD = (
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "trl",
    "datasets",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "core.data.stages",
    "core.data.synthetic",
    "core.eval.benchmarks",
    "core.eval.oracle",
    "core.models",
    "core.jobs.evaluate",
    "core.jobs.train",
    "core.tracking",
    "core.trainers.dpo",
    "core.trainers.ppo",
    "core.trainers.reward",
)
_HEADER = struct.Struct("!Q")


# ------------------------------------------------------------------------------ client
def run_warm(job: Any, main: Callable[[Any], None], address: str | None = None) -> int | None:
    """Run ``main(job)`` in a child of the warm-start server at ``address`` (default:
    ``$ROBUST_RLHF_WARM``) and return its exit status; None (run it cold) when no server answers.
    ``main`` travels by name: a function of the job's script, or of an importable module."""
    address = address or os.environ.get(WARM_ENV)
    if not address:
        return None
    try:  # stdin, stdout and stderr travel to the child: a closed one means running here
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return None
    target = [main.__module__, main.__qualname__]
    request = json.dumps({"job": job.to_dict(), "main": target, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    with sock:
        try:  # the server starts the child only once it has the whole request
            socket.send_fds(sock, [_HEADER.pack(len(request))], [0, 1, 2])
            sock.sendall(request)
            reader = sock.makefile("r", encoding="utf-8")
            first = reader.readline().split()
        except OSError as exc:
            first = [type(exc).__name__]
        if len(first) != 2 or first[0] != "pid":  # refused: no child exists, so running here is safe
            print(f"[warm] the warm-start server refused rule {job.rule} ({first}): running it here",
                  file=sys.stderr, flush=True)  # fmt: skip
            return None
        child = int(first[1])

        def forward(signum: int, frame: Any) -> None:  # the child unwinds as a cold job would
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            last = reader.readline().split()
        finally:
            signal.signal(signal.SIGTERM, previous)
    if len(last) != 2 or last[0] != "exit":
        raise RuntimeError(f"rule {job.rule}: the warm-start server lost the job (child {child})")
    return int(last[1])


# ------------------------------------------------------------------------------ server
def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("warm-start server closed the connection")
        data += chunk
    return data


def _load_main(script: str, module: str, name: str) -> Any:
    """The job's function: ``module.name``, where ``__main__`` is the workflow script itself
    (loaded from its file as a module, so its ``__main__`` block does not run)."""
    if module != "__main__":
        return getattr(importlib.import_module(module), name)
    spec = importlib.util.spec_from_file_location("_warm_job_script", script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load workflow script {script}")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, name)


def _child(conn: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
    """In the forked child: take the client's stdio, folder and environment, run the job, exit."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(WARM_ENV, None)  # a job's own subprocesses start cold

        def watch() -> None:  # the client died (its end closed): stop like a cold job on SIGTERM
            try:
                conn.recv(1)
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
        job = Job(**request["job"])
        sys.argv = [job.script]
        run_job(_load_main(job.script, *request["main"]), job)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # run_job printed the traceback; anything before it prints here
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        os._exit(code)


def serve(address: str, parent: int, preload: tuple[str, ...] = PRELOAD) -> None:
    """Import ``preload``, listen on the UNIX socket ``address`` and fork a child per request,
    until SIGTERM or until the process ``parent`` (Snakemake) is gone."""
    start = time.process_time()
    for name in preload:
        importlib.import_module(name)
    print(f"[warm] imported {len(preload)} modules in {time.process_time() - start:.1f} CPU-s", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(16)
    children: dict[int, socket.socket] = {}
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        try:
            while not stopping.is_set() and os.getppid() == parent:
                for _key, _ in sel.select(timeout=0.2):
                    conn, _addr = listener.accept()
                    try:
                        _start_child(conn, listener, children)
                    except Exception as exc:  # noqa: BLE001 - a bad request ends that client only
                        print(f"[warm] request refused: {exc!r}", flush=True)
                        conn.close()
                _reap(children)
        finally:
            for pid in children:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(address)
    print(f"[warm] stopped ({time.process_time() - start:.1f} CPU-s in the server)", flush=True)


def _start_child(conn: socket.socket, listener: socket.socket, children: dict[int, socket.socket]) -> None:
    conn.settimeout(30)
    header, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
    try:
        if len(header) != _HEADER.size or len(fds) != 3:
            raise ValueError(f"expected a {_HEADER.size}-byte header and 3 file descriptors")
        request = json.loads(_recv_exact(conn, _HEADER.unpack(header)[0]))
    except BaseException:
        for fd in fds:  # the client's copies stay with the client
            os.close(fd)
        raise
    conn.settimeout(None)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        listener.close()
        for other in children.values():
            other.close()
        _child(conn, fds, request)  # never returns
    for fd in fds:
        os.close(fd)
    children[pid] = conn
    conn.sendall(f"pid {pid}\n".encode())


def _reap(children: dict[int, socket.socket]) -> None:
    """Send each finished child's exit status (128 + signal when a signal ended it) to its client."""
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            continue
        code = os.waitstatus_to_exitcode(status)
        conn = children.pop(pid)
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {128 - code if code < 0 else code}\n".encode())
        conn.close()


# ------------------------------------------------------------------------------ the workflow's side
class WarmServer:
    """The server of one Snakemake run: started in ``onstart``, stopped in ``onsuccess``/``onerror``."""

    def __init__(self, log_path: str) -> None:
        self.address = os.path.join(tempfile.gettempdir(), f"robust-rlhf-warm-{uuid.uuid4().hex[:12]}.sock")
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        cmd = [sys.executable, "-m", "core.jobs.warm", self.address, str(os.getpid())]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.environ[WARM_ENV] = self.address  # the jobs Snakemake starts from now on inherit it

    def stop(self, timeout: float = 30) -> None:
        os.environ.pop(WARM_ENV, None)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address)


def start_server(enabled: bool, executor: str | None, log_path: str) -> WarmServer | None:
    """A server for this run when ``resources.warm_start`` is on and jobs run on this machine."""
    if not enabled or executor != "local":
        return None
    return WarmServer(log_path)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
