"""CPU step cost of two training options the workflow sets, for the reward and DPO trainers on the
embedded default's model size (same trainers, batches and clock as benchmarks/dr_overhead.py, DR
steps with ``divergence=tv``):

* **gradient checkpointing** (trl's configs default to it; the workflow turns it off unless a
  config's ``train`` block asks, core.jobs.trainer_setup.trainer_args): ratio ``off / on``;
* **length buckets** (``resources.train.length_buckets``, core.trainers.bucketing): ratio
  ``k buckets / 1``, on completions of varied length like the embedded default's (uniform in
  [8, 2 x --length - 8] words; the world's reward batches are ~56% real tokens).

Each pair of settings is interleaved A-B-B-A on the same batches; the clock is this process's CPU
time with one torch thread. Printed: the share of real tokens in a padded batch, the median step
time of each setting and their ratio.

Run: ``python benchmarks/step_cost.py [--steps 20] [--buckets 4]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from dr_overhead import build, interleaved  # noqa: E402

from core.trainers.bucketing import bucket_forward  # noqa: E402


def _checkpointing(trainer, on: bool) -> None:
    model = trainer.model
    if on and not model.is_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif not on and model.is_gradient_checkpointing:
        model.gradient_checkpointing_disable()


def _buckets(trainer, k: int) -> None:
    for model in (trainer.model, getattr(trainer, "ref_model", None)):
        if model is not None:
            bucket_forward(model, k)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="interleaved step pairs per row")
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--reward-batch", type=int, default=32)
    parser.add_argument("--dpo-batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=40, help="(mean) completion length in words")
    parser.add_argument("--rho", type=float, default=0.3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {}
    print(f"CPU time of one process, 1 thread; {args.steps} interleaved step pairs per row", flush=True)
    options = {  # name -> (varied lengths, set(trainer, on), label of "on", label of "off")
        "checkpointing": (False, _checkpointing, "on", "off"),
        "length_buckets": (True, lambda t, on: _buckets(t, args.buckets if on else 1), f"{args.buckets}", "1"),
    }
    with tempfile.TemporaryDirectory() as out:
        for option, (varied, setter, on_label, off_label) in options.items():
            args.varied = varied
            for kind in ("reward", "dpo"):
                trainer = build(kind, args, out, accumulation=1)
                trainer.model.train()
                mask = next(iter(trainer.get_train_dataloader()))["attention_mask"]
                times = interleaved(trainer, lambda on, t=trainer, f=setter: f(t, on), args.steps, 1, time.process_time)
                on, off = statistics.median(times[True]), statistics.median(times[False])
                ratio = off / on if option == "checkpointing" else on / off
                share = float(mask.float().mean())
                results[f"{option}/{kind}"] = {"on_s": on, "off_s": off, "ratio": ratio,
                                               "real_token_share": share}  # fmt: skip
                print(f"{option:>15} {kind:>6}: real tokens {share:.0%}; {on_label:>3}: {on * 1e3:7.1f} ms  "
                      f"{off_label:>3}: {off * 1e3:7.1f} ms  ratio (workflow's / trl's default) {ratio:.3f}",
                      flush=True)  # fmt: skip
    return results


if __name__ == "__main__":
    main()
