"""What the warm start (``core.jobs.warm``, ``resources.warm_start``) saves on a whole DAG, and
that it changes no number.

The same DAG (default: ``tests/smoke.yaml``, every rule of both papers at a tiny size, so the
start-up is a large share of each job) runs twice from scratch in two work folders, cold
(``warm_start: false``: every job process imports torch, transformers, trl, datasets and mlflow
itself) and warm (one server imports them once and forks each job). The clock is the CPU time of
every process of the run (``RUSAGE_CHILDREN`` of this process: Snakemake, its job processes, the
server and the jobs it forks) and the wall time. Printed: jobs, CPU seconds and wall seconds of
each run, the ratios warm / cold, and whether every model file of the two runs is byte-identical
(the MLflow run ids in the metrics files differ by design, the weights must not).

Run: ``python benchmarks/warm_start.py [--configfile tests/smoke.yaml] [--cores 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _run(workdir: Path, configfile: str, cores: int, warm: bool) -> dict:
    snakemake = Path(sys.executable).with_name("snakemake")
    workdir.mkdir(parents=True)
    overlay = workdir / "warm_start.yaml"  # merged over the config file (--config would pass a string)
    overlay.write_text(f"resources: {{warm_start: {str(warm).lower()}}}\n")
    cmd = [str(snakemake) if snakemake.exists() else "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", str(cores), "--configfile", configfile, str(overlay)]  # fmt: skip
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("ROBUST_RLHF_WARM", None)
    cpu, wall = _children_cpu(), time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the {'warm' if warm else 'cold'} run failed:\n{proc.stderr[-3000:]}")
    return {"jobs": len(re.findall(r"^Finished jobid", proc.stderr + proc.stdout, re.M)),
            "cpu_s": round(_children_cpu() - cpu, 1), "wall_s": round(time.time() - wall, 1)}  # fmt: skip


def _models(workdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*.safetensors"))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=str(REPO / "tests" / "smoke.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cold = _run(Path(tmp) / "cold", args.configfile, args.cores, warm=False)
        warm = _run(Path(tmp) / "warm", args.configfile, args.cores, warm=True)
        a, b = _models(Path(tmp) / "cold"), _models(Path(tmp) / "warm")
        same = bool(a) and a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    result = {"config": args.configfile, "cold": cold, "warm": warm,
              "cpu_ratio_warm_over_cold": round(warm["cpu_s"] / cold["cpu_s"], 3),
              "wall_ratio_warm_over_cold": round(warm["wall_s"] / cold["wall_s"], 3),
              "model_files": len(a), "models_byte_identical": same}  # fmt: skip
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
