"""Budgets from measured learning curves (docs/claims.md, the miniature: premise 2).

Runs the config's own workflow for one seed with every training budget multiplied by ``--factor``
(the BTL reward model, DPO, and the distillation paper's DPO policy at the middle length bias),
reads each model's validation-loss curve (``curves.eval_loss`` of its metrics file) and prints
the plateau step: the step after which the validation loss improves by less than ``--tol`` of its
total decrease (core.report.convergence). The config's budget of a family is then set at or
after that step, the same for a baseline and its robust variant; nothing here looks at a verdict.

    .venv/bin/python benchmarks/learning_curves.py --configfile config.yaml --factor 4 --workdir /tmp/lc
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.pipeline.paths import Paths  # noqa: E402
from core.report.convergence import convergence_summary  # noqa: E402

#: (family, config section holding its ``train`` block)
FAMILIES = (
    ("reward model (BTL)", ("dr", "reward")),
    ("DPO", ("dr", "dpo")),
    ("distillation policy (DPO)", ("distill", "policy")),
)


def _section(cfg: dict, keys: tuple[str, ...]) -> dict:
    for k in keys:
        cfg = cfg[k]
    return cfg


def scaled_config(cfg: dict, factor: float) -> dict:
    """The config for one seed, with every measured family's budget times ``factor`` and a
    validation point every tenth of the scaled budget."""
    out = copy.deepcopy(cfg)
    out["name"] = f"{cfg['name']}-learning-curves"
    out["seeds"] = [cfg["seeds"][0]]
    for _, keys in FAMILIES:
        train = _section(out, keys)["train"]
        train["max_steps"] = int(round(train["max_steps"] * factor))
        train["eval_steps"] = max(1, train["max_steps"] // 20)
        train["lr_scheduler_type"] = train.get("lr_scheduler_type", "constant")
    return out


def targets(cfg: dict, paths: Paths) -> dict[str, str]:
    seed, variant = cfg["seeds"][0], cfg["dr"]["dpo"]["variant"]
    biases = [float(b) for b in cfg["distill"]["biases"]]
    mid = min(biases, key=lambda b: abs(b - 0.5))
    beta = cfg["distill"]["beta"][0]
    return {
        FAMILIES[0][0]: paths.metrics(paths.rm(cfg["report"]["rm_variant"], "none", 0.0, seed), "train"),
        FAMILIES[1][0]: paths.metrics(paths.dpo(variant, "none", 0.0, seed), "train"),
        FAMILIES[2][0]: paths.metrics(paths.distill("dpo", mid, beta, "none", seed), "train"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--tol", type=float, default=0.01)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()

    cfg = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
    scaled = scaled_config(cfg, args.factor)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "learning-curves.yaml"
    cfg_path.write_text(yaml.safe_dump(scaled, sort_keys=False), encoding="utf-8")
    paths = Paths(f"results/{scaled['name']}")
    files = targets(scaled, paths)
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", str(args.cores),
           *files.values(), "--configfile", str(cfg_path)]  # fmt: skip
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    start = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"workflow: {time.time() - start:.0f} s (factor {args.factor}, seed {scaled['seeds'][0]})")
    print(f"| family | config budget | measured to | plateau step (tol {args.tol}) | converged by the config budget |")
    print("| --- | --- | --- | --- | --- |")
    for family, keys in FAMILIES:
        metrics = json.loads((work / files[family]).read_text(encoding="utf-8"))["metrics"]
        curve = metrics["curves"].get("eval_loss")
        budget = _section(cfg, keys)["train"]["max_steps"]
        if not curve:
            print(f"| {family} | {budget} | - | no validation curve | - |")
            continue
        s = convergence_summary(curve, budget=int(_section(scaled, keys)["train"]["max_steps"]), tol=args.tol)
        plateau = s["plateau_step"]
        ok = plateau is not None and plateau <= budget
        print(f"| {family} | {budget} | {curve['step'][-1]} | {plateau} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
