"""CPU step cost of gradient checkpointing (trl's configs turn it on by default) for the reward and
DPO trainers on the embedded default's model size; the reason the workflow turns it off unless a
config's ``train`` block asks for it (core.pipeline.training.trainer_args).

Same trainers, batches and clock as benchmarks/dr_overhead.py (DR steps, ``divergence=tv``):
steps with checkpointing on and off interleaved A-B-B-A on the same batches. Printed: median step
time of each and the ratio ``off / on`` (the fraction of a step checkpointing costs is 1 - ratio).
Gradients agree either way (tests/test_checkpoints.py checks the resumed runs; a recomputed forward
is the same forward).

Run: ``python benchmarks/checkpointing_cost.py [--steps 20] [--hidden 64] [--layers 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from dr_overhead import build, interleaved  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="interleaved step pairs per trainer")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--reward-batch", type=int, default=32)
    parser.add_argument("--dpo-batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=48, help="completion length in words")
    parser.add_argument("--rho", type=float, default=0.3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    print(f"CPU time of one process, 1 thread; {args.steps} interleaved step pairs per row", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for kind in ("reward", "dpo"):
            trainer = build(kind, args, out, accumulation=1)
            model = trainer.model

            def set_checkpointing(on: bool, model=model) -> None:
                if on and not model.is_gradient_checkpointing:
                    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                elif not on and model.is_gradient_checkpointing:
                    model.gradient_checkpointing_disable()

            model.train()
            times = interleaved(trainer, set_checkpointing, args.steps, 1, time.process_time)
            off, on = statistics.median(times[False]), statistics.median(times[True])
            results[kind] = {"off_s": off, "on_s": on, "ratio": off / on}
            print(f"{kind:>7}: checkpointing on {on * 1e3:8.1f} ms  off {off * 1e3:8.1f} ms  "
                  f"ratio off/on = {off / on:.3f}", flush=True)  # fmt: skip
    return results


if __name__ == "__main__":
    main()
