"""Is the embedded-default world learnable? Train a tiny reward model for about a minute.

Generates the synthetic world (``core.data.synthetic``), trains a byte-level BPE tokenizer on its
training texts, builds a tiny Llama-style 1-output reward model (``core.models``) and minimises the
Bradley-Terry loss ``-log sigma(r(x, y+) - r(x, y-))`` (docs/design.md §1.2, BTL RM) on the default
training mixture for a fixed wall-clock budget. It then prints pairwise accuracy
``P[r(x, y+) > r(x, y-)]`` against the oracle's preference on

- ``test``: held-out pairs drawn from the training mixture (in distribution), overall and per domain
  (the under-represented domain included);
- ``eval``: the balanced per-subset evaluation set (RewardBench style), per subset.

Usage: ``python benchmarks/learnability.py --seconds 60 --seed 0`` (add ``--json PATH`` to save).
``--real`` runs the real-text table instead (AlpacaEval's verdicts on all-MiniLM-L6-v2:
benchmarks/learnability_real.py, docs/small-real.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _encode(tok, prompts, completions, max_len):
    texts = [tok.apply_chat_template(p + c, tokenize=False) for p, c in zip(prompts, completions, strict=True)]
    return [tok(t, add_special_tokens=False)["input_ids"][:max_len] for t in texts]


def _batch(seqs, pad_id):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def _rewards(model, seqs, pad_id, batch_size=128):
    import torch

    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            ids, mask = _batch(seqs[i : i + batch_size], pad_id)
            out.append(model(input_ids=ids, attention_mask=mask).logits[:, 0])
    model.train()
    return torch.cat(out)


def _accuracy(model, enc, pad_id, groups):
    rc, rr = _rewards(model, enc["chosen"], pad_id), _rewards(model, enc["rejected"], pad_id)
    correct = (rc > rr).tolist()
    by = defaultdict(list)
    for g, c in zip(groups, correct, strict=True):
        by[g].append(c)
    return sum(correct) / len(correct), {g: (sum(v) / len(v), len(v)) for g, v in sorted(by.items())}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if "--real" in argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from learnability_real import main as real_main

        return real_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=60.0, help="training wall-clock budget")
    ap.add_argument("--n-train", type=int, default=None, help="default: the world config's")
    ap.add_argument("--vocab-size", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=160)
    ap.add_argument(
        "--domain-weights",
        type=json.loads,
        default=None,
        help='training mixture as JSON, e.g. \'{"chat": 1, "chat-hard": 1, "safety": 1, "reasoning": 1}\' '
        "(default: the world's default, which under-represents safety)",
    )
    ap.add_argument("--json", type=str, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    import torch

    from core.data.synthetic import WorldConfig, generate_world, world_corpus
    from core.models import (
        build_tiny_reward_model,
        build_tokenizer,
        count_parameters,
        load_reward_model,
        load_tokenizer,
    )

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    extra = {"domain_weights": args.domain_weights} if args.domain_weights else {}
    if args.n_train is not None:
        extra["n_train"] = args.n_train
    cfg = WorldConfig.from_dict(extra)
    world = generate_world(cfg, seed=args.seed)
    t_gen = time.time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = build_tokenizer(
            world_corpus({"train": world["train"], "sft": world["sft"]}), args.vocab_size, Path(tmp) / "tokenizer"
        )
        rm_dir = build_tiny_reward_model(
            tok_dir,
            Path(tmp) / "rm",
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=args.heads,
            seed=args.seed,
        )
        model = load_reward_model(rm_dir)
        tok = load_tokenizer(rm_dir)
    pad = tok.pad_token_id
    enc = {}
    for split in ("train", "test", "eval"):
        ds = world[split]
        enc[split] = {k: _encode(tok, ds["prompt"], ds[k], args.max_len) for k in ("chosen", "rejected")}

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    n = len(world["train"])
    gen = torch.Generator().manual_seed(args.seed)
    steps, seen, losses = 0, 0, []
    t_train = time.time()
    model.train()
    while time.time() - t_train < args.seconds:
        for idx in torch.randperm(n, generator=gen).split(args.batch_size):
            if time.time() - t_train >= args.seconds:
                break
            seqs = [enc["train"]["chosen"][i] for i in idx] + [enc["train"]["rejected"][i] for i in idx]
            ids, mask = _batch(seqs, pad)
            r = model(input_ids=ids, attention_mask=mask).logits[:, 0]
            loss = -torch.nn.functional.logsigmoid(r[: len(idx)] - r[len(idx) :]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            seen += len(idx)
            losses.append(loss.item())
    t_train = time.time() - t_train

    train_acc, _ = _accuracy(model, enc["train"], pad, world["train"]["domain"])
    test_acc, test_dom = _accuracy(model, enc["test"], pad, world["test"]["domain"])
    eval_acc, eval_sub = _accuracy(model, enc["eval"], pad, world["eval"]["subset"])
    _, eval_dom = _accuracy(model, enc["eval"], pad, world["eval"]["domain"])
    weights = dict(cfg.domain_weights)
    report = {
        "command": "python benchmarks/learnability.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "params": count_parameters(model),
        "vocab": len(tok),
        "train_pairs": n,
        "train_seconds": round(t_train, 1),
        "steps": steps,
        "pairs_seen": seen,
        "epochs": round(seen / n, 2),
        "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
        "train_accuracy": round(train_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "test_by_domain": {
            d: {"accuracy": round(a, 4), "n": k, "train_weight": weights[d]} for d, (a, k) in test_dom.items()
        },
        "eval_accuracy": round(eval_acc, 4),
        "eval_by_domain": {
            d: {"accuracy": round(a, 4), "n": k, "train_weight": weights[d]} for d, (a, k) in eval_dom.items()
        },
        "eval_by_subset": {s: {"accuracy": round(a, 4), "n": k} for s, (a, k) in eval_sub.items()},
        "world_seconds": round(t_gen, 1),
        "threads": args.threads,
    }
    _print(report)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(report, fh, indent=2)
        os.replace(tmp, path)
    return report


def _ci(acc: float, n: int) -> float:
    return 1.96 * math.sqrt(max(acc * (1 - acc), 1e-9) / n)


def _print(rep: dict) -> None:
    print(f"tiny reward model: {rep['params']:,} parameters, vocab {rep['vocab']}")
    print(
        f"trained {rep['train_seconds']} s: {rep['steps']} steps, {rep['pairs_seen']} pairs "
        f"({rep['epochs']} epochs of {rep['train_pairs']}), final BT loss {rep['final_loss']}"
    )
    print(f"train accuracy (vs sampled labels): {rep['train_accuracy']:.3f}")
    print(f"in-distribution held-out accuracy (test split, training mixture, vs oracle): {rep['test_accuracy']:.3f}")
    print(f"{'domain':<12} {'train weight':>12} {'test n':>7} {'test acc':>9} {'eval n':>7} {'eval acc':>15}")
    for d, v in rep["eval_by_domain"].items():
        t = rep["test_by_domain"].get(d, {"n": 0, "accuracy": float("nan")})
        print(
            f"{d:<12} {v['train_weight']:>12.2f} {t['n']:>7} {t['accuracy']:>9.3f} {v['n']:>7} "
            f"{v['accuracy']:>8.3f} ± {_ci(v['accuracy'], v['n']):.3f}"
        )
    print(f"balanced evaluation set (eval split), per subset; all subsets {rep['eval_accuracy']:.3f}:")
    for s, v in rep["eval_by_subset"].items():
        print(f"  {s:<24} {v['accuracy']:.3f} ± {_ci(v['accuracy'], v['n']):.3f} (n={v['n']})")


if __name__ == "__main__":
    main()
