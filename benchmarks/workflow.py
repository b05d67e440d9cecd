"""Wall times of the workflow (issue 6 benchmarks), measured in one run on this machine:

1. the embedded default's whole DAG (config.yaml) with ``--cores N`` in a fresh working directory;
2. a no-op rerun of it (goal <= 10 s);
3. ``snakemake -n --configfile configs/paper.yaml`` (goal <= 10 s): building the papers' full DAG.

Each line gives the wall time and the DAG's job count. Usage::

    python benchmarks/workflow.py                     # all three (the full run takes ~15 min)
    python benchmarks/workflow.py --workdir DIR       # reuse DIR (a finished run: only 2 and 3 cost)
    python benchmarks/workflow.py --skip-full         # only the dry runs (2 on an existing --workdir)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc


def job_count(output: str) -> int:
    """Jobs of the DAG from Snakemake's 'Job stats' block (0 when nothing is to be done)."""
    match = re.search(r"^total\s+(\d+)", output, flags=re.M)
    return int(match.group(1)) if match else 0


def finished(output: str) -> int:
    return len(re.findall(r"Finished jobid: \d+", output))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="working directory of the default run (default: a new temp dir)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="do not run the default DAG")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wf-bench-"))
    rows = []
    if not args.skip_full:
        t, proc = snakemake(work, "--cores", str(args.cores))
        out = proc.stdout + proc.stderr
        rows.append(("default DAG, full run", t, job_count(out), finished(out), "~15 min"))
    if (work / "results" / "embedded-default" / "report.md").exists():
        t, proc = snakemake(work, "--cores", str(args.cores))
        out = proc.stdout + proc.stderr
        assert "Nothing to be done" in out, "the rerun was not a no-op"
        rows.append(("default DAG, no-op rerun", t, job_count(out), finished(out), "<= 10 s"))
        t, proc = snakemake(work, "-n", "--forceall")
        rows.append(("default DAG, dry run (-n --forceall)", t, job_count(proc.stdout), 0, "-"))
    with tempfile.TemporaryDirectory(prefix="wf-paper-") as paper_dir:
        t, proc = snakemake(Path(paper_dir), "-n", "--configfile", str(REPO / "configs" / "paper.yaml"))
        rows.append(("configs/paper.yaml, snakemake -n", t, job_count(proc.stdout), 0, "<= 10 s"))
    print(f"workdir: {work}   cores: {args.cores}   cpu count: {os.cpu_count()}")
    print(f"{'measurement':40s} {'wall s':>8s} {'DAG jobs':>9s} {'ran':>5s}  goal")
    for name, t, jobs, ran, goal in rows:
        print(f"{name:40s} {t:8.1f} {jobs:9d} {ran:5d}  {goal}")


if __name__ == "__main__":
    main()
