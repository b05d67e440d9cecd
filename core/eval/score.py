"""Score any saved reward model on any preference file: ``python -m core.eval.score``.

    python -m core.eval.score --model DIR --data PATH --format NAME [--option key=value ...]

prints one JSON object: the pairwise accuracy (``r(x, y+) > r(x, y-)``, core.eval.scoring's tie rule)
with its 95% percentile-bootstrap interval, overall, per ``source`` and on the length-matched pairs
(lengths within 20%, core.eval.reference.length_matched), and the "longer response preferred" rule
on the same pairs, so a number can be read against the length bias of its data.

``--model`` is any reward model the workflow saves: a reward-model folder (BTL/DR reward models, the
distillation oracle and its reward models, the encoder + head models of small-real: every one an HF
sequence classifier that core.models.load_reward_model loads), several folders (an ensemble: the
mean of the members' rewards, e-DPO's ensemble), or the synthetic world's exact oracle
(``oracle.json``). ``--data``/``--format``/``--split``/``--option`` are core.data.load_preferences's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["main", "pair_scores", "score_file", "summarise"]

N_RESAMPLES = 1000


def _accuracy(correct: np.ndarray, seed: int) -> dict[str, Any]:
    from core.eval.oracle import bootstrap_mean_ci

    if correct.size < 2:  # no interval from fewer than two pairs
        return {"n": int(correct.size), "accuracy": float(correct.mean()) if correct.size else None, "ci95": None}
    mean, low, high = bootstrap_mean_ci(correct, n_resamples=N_RESAMPLES, seed=seed)
    return {"n": int(correct.size), "accuracy": mean, "ci95": [low, high]}


def pair_scores(
    models: Sequence[str],
    ds: Any,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    batch_size: int = 16,
    max_length: int | None = 512,
    truncation: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(r(x, y+), r(x, y-))`` per pair: one reward-model folder, the mean of several (an
    ensemble), or the synthetic world's exact oracle (an ``oracle.json``). ``truncation``: default
    core.eval.encoding.default_truncation of each model's tokenizer."""
    import torch

    from core.eval.encoding import default_truncation
    from core.eval.oracle import load_oracle, score_with_oracle
    from core.eval.pairwise import reward_model_pairwise
    from core.models import load_reward_model, load_tokenizer

    chosen, rejected = np.zeros(len(ds)), np.zeros(len(ds))
    for path in models:
        if os.path.isfile(path) and path.endswith(".json"):
            oracle = load_oracle(path, "exact")
            prompts = list(ds["prompt"])
            c = score_with_oracle(oracle, prompts, list(ds["chosen"]))
            r = score_with_oracle(oracle, prompts, list(ds["rejected"]))
        elif os.path.isdir(path):
            model = load_reward_model(path, dtype=dtype).to(torch.device(device)).eval()
            tok = load_tokenizer(path)
            res = reward_model_pairwise(
                model,
                tok,
                ds,
                batch_size=batch_size,
                max_length=max_length,
                truncation=truncation or default_truncation(tok),
                source=path,
            )
            c, r = res.score_chosen, res.score_rejected
        else:
            raise ValueError(f"--model {path}: expected a reward-model folder or a synthetic world's oracle.json")
        chosen += np.asarray(c, dtype=float) / len(models)
        rejected += np.asarray(r, dtype=float) / len(models)
    return chosen, rejected


def summarise(
    ds: Any, score_chosen: np.ndarray, score_rejected: np.ndarray, *, ties: str = "wrong", seed: int = 0
) -> dict[str, Any]:
    """Accuracy overall, per ``source`` and on length-matched pairs, with the length rule beside
    it on the same pairs, and the score spread (a near-constant model is flagged ``degenerate``)."""
    from core.eval.benchmarks import pair_spread
    from core.eval.reference import LENGTH_MATCHED_WITHIN, length_matched, reference_correct
    from core.eval.scoring import pairwise_outcomes

    correct = pairwise_outcomes(score_chosen, score_rejected, ties)
    longer = reference_correct(ds, "longer", ties)
    matched = length_matched(ds)
    sources = np.asarray(ds["source"])
    return {
        **_accuracy(correct, seed),
        "longer": _accuracy(longer, seed),
        "by_source": {
            str(s): {**_accuracy(correct[sources == s], seed), "longer": _accuracy(longer[sources == s], seed)}
            for s in dict.fromkeys(sources.tolist())
        },
        "length_matched": {
            "within": LENGTH_MATCHED_WITHIN,
            **_accuracy(correct[matched], seed),
            "longer": _accuracy(longer[matched], seed),
        },
        "ties": ties,
        "spread": pair_spread(score_chosen, score_rejected),
    }


def score_file(
    models: Sequence[str],
    data: str,
    fmt: str,
    *,
    split: str | None = None,
    options: dict[str, Any] | None = None,
    on_bad_rows: str = "drop",
    device: str = "cpu",
    dtype: str | None = None,
    batch_size: int = 16,
    max_length: int | None = 512,
    truncation: str | None = None,
    ties: str = "wrong",
    seed: int = 0,
) -> dict[str, Any]:
    """Load ``data`` (format ``fmt``), score it with ``models`` and :func:`summarise` it."""
    from core.data import load_preferences

    ds, report = load_preferences(data, fmt, split, on_bad_rows=on_bad_rows, return_report=True, **(options or {}))
    c, r = pair_scores(
        models, ds, device=device, dtype=dtype, batch_size=batch_size, max_length=max_length, truncation=truncation
    )
    return {
        "model": list(models) if len(models) > 1 else models[0],
        "data": str(data),
        "format": fmt,
        "load": report.to_dict(),
        **summarise(ds, c, r, ties=ties, seed=seed),
    }


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option {text!r}: expected key=value (YAML value: generators=[a, b])")
    import yaml

    return key, yaml.safe_load(value)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.eval.score", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, nargs="+", help="reward-model folder(s) (several: ensemble mean), or oracle.json"
    )
    parser.add_argument("--data", required=True, help="a preference file or folder (core.data.load_preferences)")
    parser.add_argument("--format", required=True, help="its format, e.g. normalised, alpaca-eval, hhh")
    parser.add_argument("--split", default=None)
    parser.add_argument("--option", action="append", type=_option, default=[], help="a loader option, key=value")
    parser.add_argument("--on-bad-rows", choices=("drop", "error"), default="drop")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, ... (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512, help="tokens per sequence (see --truncation)")
    parser.add_argument(
        "--truncation",
        choices=("keep_end", "keep_start", "encoder"),
        default=None,
        help="how a long sequence is cut (default: encoder for an encoder's tokenizer, else keep_end)",
    )
    parser.add_argument("--ties", choices=("wrong", "half"), default="wrong")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    args = parser.parse_args(argv)
    try:
        out = score_file(
            args.model,
            args.data,
            args.format,
            split=args.split,
            options=dict(args.option),
            on_bad_rows=args.on_bad_rows,
            device=args.device or _default_device(),
            dtype=args.dtype,
            batch_size=args.batch_size,
            max_length=args.max_length,
            truncation=args.truncation,
            ties=args.ties,
            seed=args.seed,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
