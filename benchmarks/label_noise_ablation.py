"""Why DR reward models lose or collapse in the miniature: the label-noise ablation (docs/claims.md).

The workflow's ``label_noise_ablation`` rule (core.report.ablation, core.jobs.report): the config's
reward-model TV grid once more in its world without label noise (``data.world.label_temperature:
0``), and per label temperature, benchmark and rho the degenerate DR seeds and the paired DR - BTL
difference with its 95% interval. This builds that target (``make ablation`` does the same) for
any synthetic-world config, ``report.ablation`` set or not, and prints the table.

    .venv/bin/python benchmarks/label_noise_ablation.py --configfile config.yaml --workdir .
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.plan.paths import Paths  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    ap.add_argument("--workdir", default=str(ROOT))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    name = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))["name"]
    start = time.time()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", args.workdir, "--cores",
           str(args.cores), "--set-threads", f"label_noise_ablation={args.cores}", "--rerun-incomplete",
           "label_noise_ablation", "--configfile", str(Path(args.configfile).resolve())]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"label-noise ablation: {time.time() - start:.0f} s")
    print((Path(args.workdir) / Paths(f"results/{name}").ablation("md")).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
