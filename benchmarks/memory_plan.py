"""The memory plan of a GPU config (core.plan.memory): for every rule that runs a model, its
planned peak GPU memory (models built on the meta device with gemma-2b's shapes; weights,
training state, activations with gradient checkpointing, logits) beside the GPU it is planned for,
and its planned host memory beside the ``mem_mb`` the rule requests. A plan, not a measurement:
check it on a GPU (``torch.cuda.max_memory_allocated``) when one is at hand.

Run: ``python benchmarks/memory_plan.py --configfile configs/paper.yaml [--gpu-gib 80]``.
Exits 1 when a request is below its plan (tests/test_memory_plan.py checks paper.yaml).
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.plan.config import validate_config  # noqa: E402
from core.plan.memory import GPU_GIB, RULE_KIND, rule_plans  # noqa: E402

#: the share of the GPU a plan may fill (what it leaves out: the allocator's fragmentation, kernels' workspaces)
HEADROOM = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="configs/paper.yaml")
    parser.add_argument("--gpu-gib", type=float, default=GPU_GIB)
    args = parser.parse_args()
    with open(args.configfile, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    validate_config(cfg)
    over = 0
    print(f"{'rule':22s} {'GPU plan':>9s} {'of GPU':>7s}  {'host plan':>9s} {'requested':>9s}  largest terms")
    for plan in rule_plans(cfg):
        requested = cfg["resources"][RULE_KIND[plan.rule]]["mem_mb"] / 1024
        bad = plan.gpu_gib > HEADROOM * args.gpu_gib or plan.host_gib > requested
        over += bad
        terms = ", ".join(f"{k} {v:.1f}" for k, v in sorted(plan.terms.items(), key=lambda kv: -kv[1])[:3])
        print(f"{plan.rule:22s} {plan.gpu_gib:8.1f}G {args.gpu_gib:6.0f}G  {plan.host_gib:8.1f}G {requested:8.1f}G  "
              f"{terms}{'  <-- OVER' if bad else ''}")  # fmt: skip
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
