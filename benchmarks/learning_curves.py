"""Budgets from measured learning curves (docs/claims.md, the miniature: premise 2).

Runs the config's own workflow for its first ``--seeds`` seeds with every training budget multiplied
by ``--factor`` (the BTL reward model, DPO, and the distillation paper's DPO policy at the middle
length bias; ``--family`` picks some), reads each model's validation-loss curve (``curves.eval_loss``
of its metrics file), averages it over the seeds (the convergence gates' curve) and prints the
plateau step: the step after which the validation loss improves by less than ``--tol`` of its total
decrease (core.report.convergence). The config's budget of a family is then set at or after that
step, the same for a baseline and its robust variant; nothing here looks at a verdict.

    .venv/bin/python benchmarks/learning_curves.py --configfile config.yaml --factor 4 --workdir /tmp/lc
    .venv/bin/python benchmarks/learning_curves.py --family distillation --seeds 5 --workdir /tmp/lc5
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.plan.paths import Paths  # noqa: E402
from core.report.convergence import family_convergence  # noqa: E402

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


def scaled_config(cfg: dict, factor: float, n_seeds: int = 1, families: tuple = FAMILIES) -> dict:
    """The config for its first ``n_seeds`` seeds, with the budget of every family in ``families``
    times ``factor`` and a validation point every twentieth of the scaled budget."""
    out = copy.deepcopy(cfg)
    out["name"] = f"{cfg['name']}-learning-curves"
    out["seeds"] = list(cfg["seeds"][:n_seeds])
    for _, keys in families:
        train = _section(out, keys)["train"]
        train["max_steps"] = int(round(train["max_steps"] * factor))
        train["eval_steps"] = max(1, train["max_steps"] // 20)
        train["lr_scheduler_type"] = train.get("lr_scheduler_type", "constant")
    return out


def targets(cfg: dict, paths: Paths) -> dict[str, list[str]]:
    """Each family's metrics files, one per seed."""
    variant = cfg["dr"]["dpo"]["variant"]
    biases = [float(b) for b in cfg["distill"]["biases"]]
    mid = min(biases, key=lambda b: abs(b - 0.5))
    beta = cfg["distill"]["beta"][0]
    return {
        FAMILIES[0][0]: [paths.metrics(paths.rm(cfg["report"]["rm_variant"], "none", 0.0, s), "train")
                         for s in cfg["seeds"]],
        FAMILIES[1][0]: [paths.metrics(paths.dpo(variant, "none", 0.0, s), "train") for s in cfg["seeds"]],
        FAMILIES[2][0]: [paths.metrics(paths.distill("dpo", mid, beta, "none", s), "train") for s in cfg["seeds"]],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=1, help="the config's first N seeds (curves averaged over them)")
    ap.add_argument("--family", action="append", help="a family whose name contains this (default: all)")
    args = ap.parse_args()

    cfg = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
    families = tuple(f for f in FAMILIES if not args.family or any(k in f[0] for k in args.family))
    scaled = scaled_config(cfg, args.factor, args.seeds, families)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "learning-curves.yaml"
    cfg_path.write_text(yaml.safe_dump(scaled, sort_keys=False), encoding="utf-8")
    paths = Paths(f"results/{scaled['name']}")
    files = {name: fs for name, fs in targets(scaled, paths).items() if name in dict(families)}
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", str(args.cores),
           *(f for fs in files.values() for f in fs), "--configfile", str(cfg_path)]  # fmt: skip
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    start = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"workflow: {time.time() - start:.0f} s (factor {args.factor}, seeds {scaled['seeds']})")
    print("| family | config budget | measured to | plateau step (1% rule) | converged by the config budget |")
    print("| --- | --- | --- | --- | --- |")
    for family, keys in families:
        scaled_budget = int(_section(scaled, keys)["train"]["max_steps"])
        s = family_convergence([str(work / f) for f in files[family]], scaled_budget)  # the gates' seed mean
        budget = _section(cfg, keys)["train"]["max_steps"]
        plateau = s["plateau_step"]
        ok = plateau is not None and plateau < budget
        print(f"| {family} | {budget} | {scaled_budget} | {plateau} | {'yes' if ok else 'no'} |")
        print(
            f"  seed-mean validation loss: first {s['total_decrease'] + s['min']:.4f}, min {s['min']:.4f}, "
            f"last {s['final']:.4f}"
        )


if __name__ == "__main__":
    main()
