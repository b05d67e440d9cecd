"""CPU step cost of length-bucketed forwards (core.trainers.bucketing) for the reward and DPO trainers.

Same trainers, model size and clock as benchmarks/dr_overhead.py (DR steps, ``divergence=tv``),
but completions of varied length like the embedded default's (uniform in [8, 2 x --length - 8]
words; the real world's reward batches are ~56% real tokens): steps with 1 chunk and with
``--buckets`` chunks, interleaved A-B-B-A on the same batches. Printed per trainer: the share of
real tokens in a padded batch, the median step time of each and the ratio ``bucketed / plain``.

Run: ``python benchmarks/length_buckets.py [--steps 20] [--buckets 4]``.
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="interleaved step pairs per trainer")
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--reward-batch", type=int, default=32)
    parser.add_argument("--dpo-batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=40, help="mean completion length in words")
    parser.add_argument("--rho", type=float, default=0.3)
    args = parser.parse_args(argv)
    args.varied = True
    torch.set_num_threads(1)
    results = {}
    print(f"CPU time of one process, 1 thread; {args.steps} interleaved step pairs per row", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for kind in ("reward", "dpo"):
            trainer = build(kind, args, out, accumulation=1)
            batch = next(iter(trainer.get_train_dataloader()))
            mask = batch["attention_mask"] if "attention_mask" in batch else batch["chosen_attention_mask"]
            real = float(mask.float().mean())

            def set_buckets(on: bool, trainer=trainer) -> None:
                bucket_forward(trainer.model, args.buckets if on else 1)
                if getattr(trainer, "ref_model", None) is not None:
                    bucket_forward(trainer.ref_model, args.buckets if on else 1)

            times = interleaved(trainer, set_buckets, args.steps, 1, time.process_time)
            plain, bucketed = statistics.median(times[False]), statistics.median(times[True])
            results[kind] = {"real_token_share": real, "plain_s": plain, "bucketed_s": bucketed,
                             "ratio": bucketed / plain}  # fmt: skip
            print(
                f"{kind:>7}: real tokens {real:.0%} of a padded batch; plain {plain * 1e3:8.1f} ms  "
                f"{args.buckets} buckets {bucketed * 1e3:8.1f} ms  ratio {bucketed / plain:.3f}",
                flush=True,
            )
    return results


if __name__ == "__main__":
    main()
