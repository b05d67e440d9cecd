"""Running a job in this process: stdout/stderr to its log, torch/BLAS on ``job.threads`` threads,
SIGTERM (SLURM's time limit, ``scancel``) unwinding it like Ctrl-C (core.tracking.raise_on_sigterm:
its MLflow run ends KILLED, exit status 143), each seed of a job over seeds in turn (a finished
seed's outputs are kept and restored by core.jobs.checkpoints), and a job asking for ``nproc > 1``
processes relaunched through ``accelerate launch --multi_gpu --num_processes N`` (torch.distributed's
launcher; on CPU the trainers set ``use_cpu`` so the processes use gloo), each process reading the
same job from a JSON file (``--job``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from core.jobs.checkpoints import (
    finished_outputs_kept,
    keep_finished_outputs,
    remove_checkpoints,
    restore_finished_outputs,
)
from core.jobs.gpus import claim_gpus, free_port
from core.jobs.job import Job, rank

#: set in the processes ``accelerate launch`` starts (they run the job instead of relaunching it)
LAUNCHED_ENV = "ROBUST_RLHF_LAUNCHED"


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


def job_device(job: Job) -> Any:
    """The one place a job's device is decided: the first CUDA device the job sees (its own GPU:
    the profile sets ``CUDA_VISIBLE_DEVICES`` per job) when its rule's resources ask for one
    (``resources.<kind>.gpu`` > 0), else the CPU. A job that asks for a GPU where torch sees none
    fails naming its rule, rather than running on the CPU for days."""
    import torch

    if job.use_cpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"rule {job.rule}: its resources ask for a GPU (resources.*.gpu > 0) but torch sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); set gpu: 0 to run it on the CPU"
        )
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))  # a process's own


def model_dtype(requested: str | None, device: Any) -> str | None:
    """The dtype a model is loaded in on ``device``: the config's (``models.<role>.dtype``), except
    bfloat16 on a GPU without bfloat16 arithmetic (before Ampere), which falls back to float32."""
    import torch

    if requested == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "float32"
    return requested


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
        "--main_process_port",
        str(free_port()),
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


def _run_seeds(main: Callable[[Job], None], job: Job) -> None:
    """Run ``main`` once per seed of the job (:meth:`Job.per_seed`). A training job (one with a
    ``model`` output) resumes: a seed an earlier attempt finished is restored, not retrained, and
    every checkpoint folder is removed once all seeds have succeeded."""
    views = job.per_seed()
    training = all("model" in one.output for one in views)
    for one in views:
        if training and len(views) > 1 and finished_outputs_kept(one):  # every rank skips it; rank 0 restores
            if rank() == 0:
                restore_finished_outputs(one)
            continue
        main(one)
        if training and len(views) > 1 and rank() == 0:
            keep_finished_outputs(one)
    if training and rank() == 0:
        remove_checkpoints(views)


def run_job(main: Callable[[Job], None], job: Job) -> None:
    """Run ``job`` in this process: output to its log, its threads, SIGTERM unwinds, each seed."""
    _redirect_to_log(job.log[0] if job.log else None)
    _set_threads(job.threads)
    from core.tracking import Terminated, raise_on_sigterm

    raise_on_sigterm()
    start = time.time()
    print(f"[workflow] {job.run_name} rank {rank()} started {time.strftime('%H:%M:%S')}", flush=True)
    try:
        if job.params.get("hub_offline"):  # hub models come from what `prefetch` downloaded
            os.environ["HF_HUB_OFFLINE"] = "1"
        if not os.environ.get(LAUNCHED_ENV):  # a launched process inherits its job's GPUs
            claimed = claim_gpus(job.gpus, f"rule {job.rule}")
            if claimed:
                print(f"[workflow] {job.run_name} on GPU(s) {','.join(claimed)} (CUDA_VISIBLE_DEVICES)", flush=True)
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
