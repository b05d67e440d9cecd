"""What the profiles rely on, checked with real Snakemake runs of tiny workflows: a retried job
gets twice the memory and time (the rules' resources, core.plan.Pipeline.resources, scale with
``attempt``; ``--retries 1`` is the profiles' setting), and a run through the SLURM executor with a
SQLite tracking URI warns loudly before its first job (rules/common.smk's ``onstart``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from core.plan.config import tracking_warning

REPO = Path(__file__).resolve().parents[1]

SNAKEFILE = textwrap.dedent(
    """
    import json, os
    import yaml
    from core.plan import Pipeline

    P = Pipeline(yaml.safe_load(open(os.path.join(REPO, "tests", "smoke.yaml"))))

    rule all:
        input: "done.json"

    rule flaky:
        output: "done.json"
        threads: 1
        resources:
            **P.seeded_resources("train"),
        run:
            with open("attempts.jsonl", "a") as fh:
                fh.write(json.dumps({"mem_mb": resources.mem_mb, "runtime": resources.runtime}) + "\\n")
            if sum(1 for _ in open("attempts.jsonl")) == 1:
                raise RuntimeError("killed on the first try")
            with open(output[0], "w") as fh:
                json.dump({"ok": True}, fh)
    """
)


def test_retry_gets_twice_the_memory_and_time(tmp_path):
    (tmp_path / "Snakefile").write_text(f"REPO = {str(REPO)!r}\n" + SNAKEFILE)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--retries", "1", "--default-resources",
         "mem_mb=4000*attempt", "runtime=120*attempt"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    attempts = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    train = {"mem_mb": 2000, "runtime": 10}  # tests/smoke.yaml: resources.train, one seed
    assert attempts == [train, {k: 2 * v for k, v in train.items()}]
    assert json.loads((tmp_path / "done.json").read_text()) == {"ok": True}


def test_tracking_warning_only_for_sqlite_on_a_cluster_executor():
    cfg = yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())
    assert "mlflow server --backend-store-uri postgresql://" in tracking_warning(cfg, "slurm")
    for executor in (None, "local", "dryrun", "touch"):
        assert tracking_warning(cfg, executor) is None
    cfg["tracking"]["uri"] = "http://mlflow.example.org:5000"
    assert tracking_warning(cfg, "slurm") is None


WITH_COMMON = textwrap.dedent(
    """
    configfile: os.path.join(REPO, "tests", "smoke.yaml")

    include: os.path.join(REPO, "rules", "common.smk")

    rule all:
        input: "x.txt"

    rule x:
        output: "x.txt"
        shell: "touch {output}"
    """
)


def test_the_slurm_executor_warns_about_sqlite_tracking_before_submitting(tmp_path):
    """The workflow's own rules/common.smk under ``--executor slurm`` (profiles/slurm's executor):
    the warning comes before the first submission. SLURM's commands are stubs that fail, so nothing
    is submitted even where SLURM is installed."""
    (tmp_path / "Snakefile").write_text(f"import os\nREPO = {str(REPO)!r}\n" + WITH_COMMON)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("sbatch", "sacct", "squeue", "scancel", "sinfo", "sacctmgr", "srun"):
        (stubs / name).write_text("#!/bin/sh\nexit 1\n")
        (stubs / name).chmod(0o755)
    path = os.pathsep.join([str(stubs), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}, "PYTHONPATH": str(REPO), "PATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "slurm", "--jobs", "1",
         "--slurm-init-seconds-before-status-checks", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert "a SQLite file, but the jobs run through the 'slurm' executor" in log, log[-4000:]
    assert not (tmp_path / "x.txt").exists()
    local = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert local.returncode == 0 and "SQLite file" not in local.stdout + local.stderr


SLURM_ROUTING = textwrap.dedent(
    """
    import os
    import yaml
    from core.plan import Pipeline

    cfg = yaml.safe_load(open(os.path.join(REPO, "tests", "smoke.yaml")))
    cfg["resources"]["train"]["gpu"] = 1
    cfg["resources"]["gpu_partition"] = "gpu-a100"
    cfg["resources"]["max_runtime"] = 50
    P = Pipeline(cfg)

    rule all:
        input: "gpu.txt", "cpu.txt"

    rule gpu_job:
        output: "gpu.txt"
        resources: **P.resources("train", seeds=30)
        shell: "touch {output}"

    rule cpu_job:
        output: "cpu.txt"
        resources: **P.resources("light")
        shell: "touch {output}"
    """
)


def test_slurm_profile_routes_gpu_jobs_caps_runtime_and_requeues(tmp_path):
    """profiles/slurm as submitted (``sbatch`` is a stub that records its arguments and refuses):
    a job that asks for a GPU goes to ``resources.gpu_partition`` with ``--gpus``, its runtime stops
    at ``resources.max_runtime``, every job is requeued on preemption; a CPU job keeps the
    profile's partition and asks for no GPU."""
    (tmp_path / "Snakefile").write_text(f"REPO = {str(REPO)!r}\n" + SLURM_ROUTING)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("sacct", "squeue", "scancel", "sacctmgr", "srun"):
        (stubs / name).write_text("#!/bin/sh\nexit 1\n")
        (stubs / name).chmod(0o755)
    (stubs / "sinfo").write_text('#!/bin/sh\necho PARTITION\necho "cpu*"\necho gpu-a100\n')  # "cpu": the default
    (stubs / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "sbatch.log"}\nexit 1\n')
    for name in ("sinfo", "sbatch"):
        (stubs / name).chmod(0o755)
    path = os.pathsep.join([str(stubs), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}, "PYTHONPATH": str(REPO), "PATH": path}
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / "slurm"), "--jobs", "2",
         "--retries", "0", "--latency-wait", "1", "--keep-going"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = (tmp_path / "sbatch.log").read_text().splitlines()
    gpu = next(line.split(" --wrap")[0].split() for line in lines if "rule_gpu_job" in line)
    cpu = next(line.split(" --wrap")[0].split() for line in lines if "rule_cpu_job" in line)
    assert "-p" in gpu and gpu[gpu.index("-p") + 1] == "gpu-a100" and "--gpus=1" in gpu
    assert gpu[gpu.index("-t") + 1] == "50"  # 30 seeds x the runtime, capped
    assert "--requeue" in gpu and "--requeue" in cpu
    assert cpu[cpu.index("-p") + 1] == "cpu" and not any(a.startswith("--gpus") for a in cpu)
