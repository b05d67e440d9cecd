"""Why DR reward models lose or collapse in the miniature: the label-noise ablation (docs/claims.md).

The DR paper's premise is a shift in the *prompt* distribution; TV-DRO also up-weights the pairs
with the largest loss, which in Bradley-Terry-labelled data are mostly the pairs whose label
disagrees with the oracle. This runs the config's reward-model grid (BTL and DR-TV over the
config's TV grid, every seed) once more in a world whose labels have no noise
(``data.world.label_temperature: 0``: the preferred response is the oracle's argmax), and prints,
for the config's own world and the noise-free one, per rho: the seeds whose model is degenerate
(near-constant rewards), and the paired DR - BTL difference (mean over seeds, 95% Student-t
interval) on every benchmark.

    .venv/bin/python benchmarks/label_noise_ablation.py --configfile config.yaml --workdir .
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.plan import Pipeline  # noqa: E402
from core.report.tables import t_quantile  # noqa: E402


def noise_free(cfg: dict) -> dict:
    """The config's world without label noise and only its reward-model TV grid (one variant)."""
    out = copy.deepcopy(cfg)
    out["name"] = f"{cfg['name']}-label-t0"
    out["data"]["world"]["label_temperature"] = 0.0
    variant = cfg["report"]["rm_variant"]
    out["dr"]["reward"]["grids"] = {variant: {"tv": list(cfg["dr"]["reward"]["grids"][variant]["tv"])}}
    return out


def rm_files(p: Pipeline, bench: str) -> dict[float, list[str]]:
    variant = p.cfg["report"]["rm_variant"]
    return {rho: [p.paths.metrics(p.paths.rm(v, d, rho, s), bench) for s in p.seeds()]
            for v, d, rho in p.rm_grid(variant, "tv")}  # fmt: skip


def score(path: Path, bench: str) -> tuple[float, bool]:
    m = json.loads(path.read_text(encoding="utf-8"))["metrics"]
    value = m["accuracy"] if bench == "id" else m["scores"]["overall"]
    return 100 * float(value), bool(m.get("spread", {}).get("degenerate", False))


def summary(workdir: Path, cfg: dict) -> list[str]:
    p = Pipeline(cfg)
    lines = []
    for bench in p.dr_benchmarks():
        files = rm_files(p, bench)
        base = [score(workdir / f, bench)[0] for f in files[0.0]]
        for rho, fs in files.items():
            if rho == 0.0:
                continue
            scored = [score(workdir / f, bench) for f in fs]
            diffs = np.array([v for v, _ in scored]) - np.array(base)
            half = t_quantile(len(diffs)) * diffs.std(ddof=1) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
            degenerate = sum(d for _, d in scored)
            lines.append(f"| {cfg['data']['world'].get('label_temperature', 0.5)} | {bench} | {rho:g} | "
                         f"{np.mean(base):.1f} | {np.mean([v for v, _ in scored]):.1f} | "
                         f"{diffs.mean():+.2f} [{diffs.mean() - half:+.2f}, {diffs.mean() + half:+.2f}] | "
                         f"{degenerate} of {len(fs)} |")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    ap.add_argument("--workdir", default=str(ROOT))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
    ablated, work = noise_free(cfg), Path(args.workdir)
    cfg_path = work / "results" / f"{ablated['name']}.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(ablated, sort_keys=False), encoding="utf-8")
    p = Pipeline(ablated)
    targets = sorted({f for b in p.dr_benchmarks() for fs in rm_files(p, b).values() for f in fs})
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    start = time.time()
    cmd = [str(bin_dir / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", str(args.cores),
           *targets, "--configfile", str(cfg_path)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"noise-free world: {time.time() - start:.0f} s ({len(p.seeds())} seeds)")
    print("| label temperature | benchmark | rho (TV) | BTL | DR | DR - BTL [95% CI] | degenerate DR models |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for config in (cfg, ablated):
        print("\n".join(summary(work, config)))


if __name__ == "__main__":
    main()
