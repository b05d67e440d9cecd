"""Each concurrent job of one machine on its own GPUs, and its own port for a multi-process launch.

SLURM gives a job its GPUs in ``CUDA_VISIBLE_DEVICES``; on one machine (``profiles/local``)
Snakemake only counts them (the ``gpu`` resource: never more GPU jobs at once than the machine
has), so a job started without ``CUDA_VISIBLE_DEVICES`` claims as many free GPUs as its rule asks
for (``resources.<kind>.gpu``) with one lock file per GPU (``fcntl.flock``, held by the job's
process until it exits, so a killed job frees its GPUs) and sets ``CUDA_VISIBLE_DEVICES`` to them
before torch starts CUDA. The machine's GPUs are ``ROBUST_RLHF_GPUS`` (``0,1,...``) when set, else
those ``nvidia-smi -L`` lists. Torch-free.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import tempfile
import time
from typing import IO

__all__ = ["claim_gpus", "free_port", "machine_gpus", "release_gpus"]

#: how long a job waits for a GPU another job still holds (Snakemake's gpu resource should make
#: this rare: a job that finished frees its locks at once)
WAIT_SECONDS = 600.0
_HELD: list[IO[str]] = []  # the open lock files of this process's claim (closed when it exits)


def machine_gpus() -> list[str]:
    """The GPUs of this machine: ``ROBUST_RLHF_GPUS`` (comma-separated indices), else ``nvidia-smi -L``."""
    listed = os.environ.get("ROBUST_RLHF_GPUS")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def _lock_dir() -> str:
    default = os.path.join(tempfile.gettempdir(), f"robust-rlhf-gpus-{os.getuid()}")
    return os.environ.get("ROBUST_RLHF_GPU_LOCKS") or default


def claim_gpus(n: int, what: str, wait: float = WAIT_SECONDS) -> list[str]:
    """Claim ``n`` free GPUs of this machine for this process and set ``CUDA_VISIBLE_DEVICES``;
    nothing when ``n`` is 0 or ``CUDA_VISIBLE_DEVICES`` is already set (a scheduler's, or the
    user's, choice). Waits up to ``wait`` seconds for GPUs other jobs hold; fails naming ``what``
    when the machine has fewer than ``n`` GPUs or none comes free."""
    if n <= 0 or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return []
    gpus = machine_gpus()
    if len(gpus) < n:
        raise RuntimeError(f"{what}: asks for {n} GPU(s) but this machine has {len(gpus)} ({gpus}); "
                           "set ROBUST_RLHF_GPUS or CUDA_VISIBLE_DEVICES, or gpu: 0 in the config")  # fmt: skip
    os.makedirs(_lock_dir(), exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        got: list[tuple[str, IO[str]]] = []
        for gpu in gpus:
            fh = open(os.path.join(_lock_dir(), f"gpu{gpu}.lock"), "a")  # noqa: SIM115 (held until exit)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            got.append((gpu, fh))
            if len(got) == n:
                break
        if len(got) == n:
            _HELD.extend(fh for _, fh in got)
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(g for g, _ in got)
            return [g for g, _ in got]
        for _, fh in got:
            fh.close()
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what}: no {n} free GPU(s) of {gpus} within {wait:.0f} s (held by other jobs; "
                               f"locks in {_lock_dir()})")  # fmt: skip
        time.sleep(1.0)


def release_gpus() -> None:
    """Give this process's claimed GPUs back (a process that exits does so by itself)."""
    while _HELD:
        _HELD.pop().close()
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)


def free_port() -> int:
    """A TCP port free on this machine now, for a multi-process job's rendezvous (accelerate's
    default 29500 would be shared by two such jobs started together)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
