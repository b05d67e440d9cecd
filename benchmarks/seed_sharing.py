"""CPU cost of what a job's seeds share, with and without the sharing the workflow does (one job
process trains or evaluates every seed, ``core.jobs.job``):

* **pi_ref's log-probs for DPO-family training** (trl's ``precompute_ref_log_probs``): built per
  seed by trl (its cache misses: its key changes with every trainer's arguments) or once per job
  (``DRDPOTrainer._precompute_ref_logps`` keyed by token ids and pi_ref's weights). Measured: the
  CPU time of constructing one trainer per seed (tokenisation + precompute) on the same pairs.
* **benchmark evaluation of policies** (``core.eval.benchmarks.evaluate_benchmark``): per seed,
  encoding + pi_ref's forward + one policy forward per mode (likelihood, implicit) before; now the
  encoding and pi_ref's log-probs once per job (``cache``) and one policy forward for both modes.
  The uncached row calls ``evaluate_benchmark`` without ``cache`` (its policy forward is already
  shared by the modes), so its ratio shows the encoding and pi_ref sharing only.

Both settings run in this one process on the same data and models, on the embedded default's
model size and one torch thread; printed: CPU seconds per job of ``--seeds`` seeds and the ratio
shared / per seed.

Run: ``python benchmarks/seed_sharing.py [--seeds 5] [--pairs 480] [--bench-pairs 360]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from dr_overhead import _common, _data, _model, _tokenizer  # noqa: E402


def _trainers(seeds: int, data, tok, ref, out: str, shared: bool) -> float:
    """CPU seconds to build one DPO trainer per seed (pi_ref's log-probs precomputed)."""
    from core.trainers.dpo import DRDPOConfig, DRDPOTrainer

    cache: dict = {}
    start = time.process_time()
    for seed in range(seeds):
        if not shared:
            cache.clear()
        common = {**_common(os.path.join(out, str(seed)), 16, 1), "seed": seed}
        config = DRDPOConfig(loss_type="dpo", beta=0.1, precompute_ref_log_probs=True, **common)
        DRDPOTrainer(model=copy.deepcopy(ref), ref_model=ref, args=config, train_dataset=data, processing_class=tok,
                     ref_logps_cache=cache)  # fmt: skip
    return time.process_time() - start


def _evaluations(seeds: int, rows, tok, ref, policies: list, shared: bool) -> float:
    """CPU seconds to evaluate one policy per seed on one benchmark (both modes)."""
    from core.eval.benchmarks import evaluate_benchmark

    cache: dict = {}
    bench = {"kind": "pairs", "label": "benchmark"}
    start = time.process_time()
    for policy in policies[:seeds]:
        evaluate_benchmark(rows, bench, tok, policy, ref, batch_size=64, max_length=192, ties="wrong",
                           source="bench", cache=cache if shared else None)  # fmt: skip
    return time.process_time() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=480, help="training pairs (the distillation policies': 480)")
    parser.add_argument("--bench-pairs", type=int, default=360)
    parser.add_argument("--length", type=int, default=40, help="(mean) completion length in words")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("TQDM_DISABLE", "1")
    tok = _tokenizer()
    ref = _model(tok, 64, 2, reward=False).eval()
    policies = [_model(tok, 64, 2, reward=False).eval() for _ in range(args.seeds)]
    data = _data(args.pairs, args.length, varied=True)
    rows = _data(args.bench_pairs, args.length, varied=True)
    results = {}
    with tempfile.TemporaryDirectory() as out:
        rows_of = {
            "dpo_trainers": lambda shared: _trainers(args.seeds, data, tok, ref, out, shared),
            "policy_evaluation": lambda shared: _evaluations(args.seeds, rows, tok, ref, policies, shared),
        }
        for name, run in rows_of.items():
            run(True)  # warm-up (imports, first allocations)
            per_seed, shared = run(False), run(True)
            results[name] = {"per_seed_s": per_seed, "shared_s": shared, "ratio": shared / per_seed}
            print(f"{name:>18}: {args.seeds} seeds, per seed {per_seed:6.2f} s  shared {shared:6.2f} s  "
                  f"ratio {shared / per_seed:.3f}", flush=True)  # fmt: skip
    return results


if __name__ == "__main__":
    main()
