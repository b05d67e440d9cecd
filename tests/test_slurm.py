"""The workflow through a real one-node SLURM (scripts/local-slurm.sh, slurmdbd accounting) with
the unchanged profiles/slurm, checked job by job against `sacct` and output by output against a
local run with profiles/local. Marked `slurm`; skipped with the reason where SLURM cannot run
(not root, no apt-get, bring-up failed) unless ROBUST_RLHF_REQUIRE_SLURM=1, which turns those
skips into failures (for CI, whose machine is known to run it)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nested import flatten

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "local-slurm.sh"


@dataclass(frozen=True)
class WorkflowUnderTest:
    """A Snakemake workflow, how to call it, and which of its outputs must match a local run's."""

    snakefile: Path
    extra_args: tuple[str, ...]
    compare_globs: tuple[str, ...]
    local_rules: frozenset[str]  # rules declared `localrules`: the only ones allowed off SLURM
    slurm_timeout_s: int  # `timeout -s KILL` for the SLURM run (the plugin ignores SIGTERM)


TOY_WORKFLOW = WorkflowUnderTest(
    snakefile=REPO / "tests" / "fixtures" / "slurm_toy" / "Snakefile",
    extra_args=(),
    compare_globs=("results/**/*",),
    local_rules=frozenset({"all"}),
    slurm_timeout_s=100,
)
# The project's own workflow on tests/smoke.yaml. CI runs it up to DR Table 1: the synthetic
# world, source filtering, splitting, subsampling, tokenizer and base model, BTL and DR
# reward-model training, evaluation and the table (11 jobs, 10 through SLURM; ~35 s locally,
# ~130 s through SLURM). ROBUST_RLHF_SLURM_FULL=1 runs the whole smoke DAG instead (76 jobs, 48
# through SLURM; measured 167 s locally, 320 s through SLURM, outputs equal): the same rules with
# more wildcards, left out of CI to keep the suite within its 15 minutes.
_SMOKE = ("--configfile", str(REPO / "tests" / "smoke.yaml"))
FULL_SMOKE = os.environ.get("ROBUST_RLHF_SLURM_FULL") == "1"
SMOKE_WORKFLOW = WorkflowUnderTest(
    snakefile=REPO / "Snakefile",
    extra_args=_SMOKE if FULL_SMOKE else ("results/smoke/tables/table1.md", *_SMOKE),
    compare_globs=("results/smoke/tables/**/*.csv", "results/smoke/metrics/**/*.json"),
    local_rules=frozenset({"all", "table", "figure", "report"}),
    slurm_timeout_s=900 if FULL_SMOKE else 500,
)

# The workflow this test runs (TOY_WORKFLOW isolates SLURM problems from the project's rules).
WORKFLOW = SMOKE_WORKFLOW

# What legitimately differs between two runs of the same jobs: MLflow run ids and wall times.
RUN_SPECIFIC = re.compile(r"(^|\.)(run_id|train_run_id|run_ids)$|runtime|per_second|_seconds?$")

pytestmark = pytest.mark.slurm


def _why_slurm_cannot_run() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"local SLURM needs Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "local SLURM needs root (daemons, /etc/slurm, apt-get)"
    if shutil.which("sinfo") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and there is no apt-get to install it"
    for tool in ("bash", "setsid", "timeout"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found"
    return None


def _script(action: str, timeout_s: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), action],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[None]:
    """A running local SLURM: reuses one started by CI (and leaves it running), else starts
    one and stops it at the end of the session."""
    required = os.environ.get("ROBUST_RLHF_REQUIRE_SLURM") == "1"
    reason = _why_slurm_cannot_run()
    if reason:
        (pytest.fail if required else pytest.skip)(reason)
    if _script("status", 30).returncode == 0:
        yield
        return
    try:
        started = _script("start", 600)
    except subprocess.TimeoutExpired:
        started = None
    if started is None or started.returncode != 0:
        detail = "timed out" if started is None else started.stderr[-2000:]
        _script("stop", 120)
        (pytest.fail if required else pytest.skip)(f"local SLURM bring-up failed: {detail}")
    print(started.stdout.strip())
    try:
        yield
    finally:
        stopped = _script("stop", 120)
        assert stopped.returncode == 0, stopped.stderr


def _run_snakemake(workdir: Path, profile: str, log: Path, timeout_s: int | None = None) -> tuple[int, str, float]:
    """Run the workflow in `workdir` with `profile`; return (exit code, log text, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(WORKFLOW.snakefile),
        "--profile", str(REPO / "profiles" / profile),
        *WORKFLOW.extra_args,
    ]  # fmt: skip
    if timeout_s is not None:
        cmd = ["timeout", "-s", "KILL", str(timeout_s), *cmd]
    workdir.mkdir(parents=True)
    start = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.run(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ).returncode  # fmt: skip
    return rc, log.read_text(), time.monotonic() - start


def _rules_run(log: str, prefix: str) -> list[str]:
    """Rule names of the jobs Snakemake started, from its `rule NAME:` / `localrule NAME:`."""
    return re.findall(rf"^{prefix}(\w+):$", log, flags=re.MULTILINE)


def _sacct_records(run_id: str) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every SLURM job named `run_id` in the accounting database."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    out = subprocess.run(
        ["sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State,Comment",
         "--starttime", since, "--name", run_id],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.strip()]


def _comparable(path: Path) -> dict[str, object] | bytes:
    """A file's content without what differs run to run: JSON and CSV as flat {key: value} with
    run ids and wall times dropped, anything else as bytes."""
    if path.suffix == ".json":
        flat = flatten(json.loads(path.read_text()))
    elif path.suffix == ".csv":
        with path.open(newline="") as fh:
            flat = {f"{i}.{k}": v for i, row in enumerate(csv.DictReader(fh)) for k, v in row.items()}
    else:
        return path.read_bytes()
    return {
        k: v for k, v in flat.items() if not RUN_SPECIFIC.search(k.split(".", 1)[-1] if path.suffix == ".csv" else k)
    }


def _outputs(workdir: Path) -> dict[str, dict[str, object] | bytes]:
    files = {p for pattern in WORKFLOW.compare_globs for p in workdir.glob(pattern)}
    return {str(p.relative_to(workdir)): _comparable(p) for p in files if p.is_file()}


def _differences(a: dict[str, object] | bytes, b: dict[str, object] | bytes) -> list[str]:
    if isinstance(a, bytes) or isinstance(b, bytes):
        return [] if a == b else ["bytes"]
    if sorted(a) != sorted(b):
        return [f"keys {sorted(set(a) ^ set(b))[:5]}"]
    bad = []
    for key, va in a.items():
        vb = b[key]
        try:
            fa, fb = float(va), float(vb)  # CSV cells are text
        except (TypeError, ValueError):
            if va != vb:
                bad.append(f"{key}: {va!r} != {vb!r}")
            continue
        if not (fa == fb or (math.isnan(fa) and math.isnan(fb)) or math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-9)):
            bad.append(f"{key}: {va!r} != {vb!r}")
    return bad


def test_workflow_through_slurm_matches_local_run(local_slurm: None, tmp_path: Path) -> None:
    rc, local_log, local_s = _run_snakemake(tmp_path / "local", "local", tmp_path / "local.log")
    assert rc == 0, local_log[-4000:]

    rc, log, slurm_s = _run_snakemake(tmp_path / "slurm", "slurm", tmp_path / "slurm.log", WORKFLOW.slurm_timeout_s)
    assert rc == 0, f"SLURM run failed (rc {rc}, 137 = killed by timeout):\n{log[-6000:]}"
    print(f"\nwall time: local {local_s:.1f} s, SLURM {slurm_s:.1f} s")

    # The same jobs ran in both runs...
    local_jobs = Counter(_rules_run(local_log, "(?:local)?rule "))
    remote_jobs = Counter(_rules_run(log, "rule "))
    login_node_jobs = Counter(_rules_run(log, "localrule "))
    assert remote_jobs, "no job went to SLURM"
    assert remote_jobs + login_node_jobs == local_jobs
    assert set(login_node_jobs) <= WORKFLOW.local_rules, login_node_jobs

    # ...every non-local one was submitted with sbatch, once...
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id, log[-4000:]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == len(set(submitted)) == remote_jobs.total()

    # ...and SLURM's accounting saw exactly those jobs complete, one per rule job.
    records = _sacct_records(run_id.group(1))
    assert sorted(job_id for job_id, _, _ in records) == sorted(submitted)
    assert {state for _, state, _ in records} == {"COMPLETED"}, records
    sacct_rules = Counter(comment.split("_wildcards_")[0].removeprefix("rule_") for _, _, comment in records)
    assert sacct_rules == remote_jobs

    local_outputs = _outputs(tmp_path / "local")
    assert local_outputs, f"no outputs match {WORKFLOW.compare_globs}"
    slurm_outputs = _outputs(tmp_path / "slurm")
    assert sorted(slurm_outputs) == sorted(local_outputs)
    differing = {name: d for name in local_outputs if (d := _differences(local_outputs[name], slurm_outputs[name]))}
    assert not differing, f"outputs differ between the SLURM and the local run: {differing}"
