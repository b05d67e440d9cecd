"""One benchmark as the tables see it: which rows it keeps and their subsets, and its scores.

Reward model: a pair is correct when r(x, y+) > r(x, y-) (strict; ties per ``eval.ties``).
Policy: both the likelihood rule pi(y+|x) > pi(y-|x) (DR paper §5.2) and the implicit reward
log pi/pi_ref(y+) > log pi/pi_ref(y-) (RewardBench's DPO mode); the tables pick one by config.
Scores by benchmark kind: RewardBench sections with the official weights, HHH subsets, MT-Bench
per turn, or plain accuracy (with per-subset accuracies when the benchmark maps subsets).
RewardBench 2 (kind ``rewardbench2``) scores every completion of a prompt once (the same scores in
both policy modes) and applies the official best-of-n and Ties rules (core.eval.rewardbench2).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.eval.encoding import Batching, encode_completion, encode_pairs, resolve_pad_id, rows_from
from core.eval.hhh import score_hhh
from core.eval.mtbench import score_mtbench
from core.eval.pairwise import pair_logprobs, policy_pairwise, reward_model_pairwise, score_sequences, sequence_logprobs
from core.eval.reference import REFERENCE_RULES, reference_correct, response_text
from core.eval.rewardbench import score_rewardbench
from core.eval.rewardbench2 import group_records, record_pairs, score_rewardbench2
from core.eval.scoring import accuracy, grouped_accuracy, pairwise_outcomes

__all__ = [
    "PAIRWISE_KINDS",
    "SCORED_MODES",
    "benchmark_view",
    "evaluate_benchmark",
    "evaluate_reference",
    "pair_spread",
    "score_benchmark",
    "spread",
]

TURN = re.compile(r"-t(\d+)-")
#: the policy scoring modes every evaluation writes (the tables pick one by config)
SCORED_MODES = ("likelihood", "implicit")
#: a model whose scores spread less than this (standard deviation over every scored response)
#: has learned a constant: it is flagged ``degenerate`` (eval.degenerate_std)
DEGENERATE_STD = 1e-3
#: benchmark kinds scored pair by pair (``rewardbench2`` scores whole records: :func:`_evaluate_records`)
PAIRWISE_KINDS = ("rewardbench", "hhh", "mtbench", "pairs")


def _map(name: Any, subset_map: Mapping[str, str]) -> str | None:
    if name in subset_map:
        return subset_map[name]
    hits = sorted({v for k, v in subset_map.items() if fnmatch.fnmatchcase(str(name), k)})
    if len(hits) > 1:
        raise ValueError(f"subset {name!r} matches subset_map patterns with different targets {hits}")
    return hits[0] if hits else None


def benchmark_view(ds: Any, bench: Mapping[str, Any]) -> tuple[Any, list]:
    """(rows kept, their group labels): the benchmark's subset of each row after subset_map.

    The subset is the ``subset`` column when present (synthetic world), else RewardBench's
    ``source`` / HHH's ``domain``; MT-Bench's turn is read from the loader's id (``-t<turn>-``).
    """
    kind, smap = bench["kind"], dict(bench.get("subset_map") or {})
    cols = ds.column_names
    if "subset" in cols:
        raw = list(ds["subset"])
    elif kind in ("rewardbench", "rewardbench2"):
        raw = list(ds["source"])
    elif kind == "hhh":
        raw = list(ds["domain"])
    elif kind == "mtbench":
        raw = []
        for i, rid in enumerate(ds["id"]):
            m = TURN.search(str(rid))
            if not m:
                raise ValueError(f"MT-Bench row {i} (id {rid!r}): cannot read its turn from the id")
            raw.append(int(m.group(1)))
    else:
        raw = [None] * len(ds)
    if not smap or kind == "rewardbench":
        return ds, raw
    labels = [_map(r, smap) for r in raw]
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    if not keep:
        raise ValueError(f"benchmark {bench.get('label')!r}: subset_map {smap} keeps no rows")
    return ds.select(keep), [labels[i] for i in keep]


def score_benchmark(bench: Mapping[str, Any], labels: Sequence[Any], correct: Sequence[float]) -> dict[str, Any]:
    """``{"accuracy", "scores"}`` of one benchmark from per-pair outcomes and their subsets."""

    kind = bench["kind"]
    if kind not in PAIRWISE_KINDS:
        raise ValueError(f"benchmark kind {kind!r} is not scored pair by pair (expected one of {PAIRWISE_KINDS})")
    if kind == "rewardbench":
        scores = score_rewardbench(labels, correct, subset_map=bench.get("subset_map") or None).to_dict()
    elif kind == "hhh":
        scores = score_hhh(labels, correct).to_dict()
    elif kind == "mtbench":
        turns = [int(str(t).split("_")[-1]) for t in labels]
        scores = score_mtbench(turns, correct).to_dict()
    else:
        scores = {"overall": accuracy(correct)}
        if any(lab is not None for lab in labels):
            scores["subsets"] = {str(k): v for k, v in grouped_accuracy([str(x) for x in labels], correct).items()}
    return {"accuracy": accuracy(correct), "scores": scores}


def evaluate_benchmark(
    ds: Any,
    bench: Mapping[str, Any],
    tok: Any,
    model: Any,
    ref: Any,
    *,
    batch_size: int | Batching,
    max_length: int,
    ties: str,
    source: str,
    degenerate_std: float = DEGENERATE_STD,
    cache: dict | None = None,
) -> tuple[dict[str, Any], int]:
    """Metrics of one benchmark and its pair count: a reward model's accuracy (``ref`` None), or
    a policy's in both modes (``{"likelihood": ..., "implicit": ...}``), each with its
    :func:`spread` (the degeneracy flag); RewardBench 2 by :func:`_evaluate_records`. The policy's
    log-probs are computed once for both modes. ``cache``: a dict the caller keeps for one ``tok``
    and one ``ref`` (e.g. across the seeds of a job), holding each benchmark's encoding and pi_ref's
    log-probs of it, so they are computed once."""

    ds, labels = benchmark_view(ds, bench)
    if bench["kind"] == "rewardbench2":
        opts = {"batch_size": batch_size, "max_length": max_length, "ties": ties, "source": source,
                "degenerate_std": degenerate_std}  # fmt: skip
        return _evaluate_records(ds, labels, tok, model, ref, opts), len(ds)
    cache = {} if cache is None else cache
    key = (source, repr(sorted(bench.items())), max_length)
    if ("encoded", key) not in cache:
        cache["encoded", key] = encode_pairs(ds, tok, max_length=max_length, source=source)
    enc = cache["encoded", key]
    if ref is None:
        res = reward_model_pairwise(model, tok, enc, batch_size=batch_size, ties=ties, source=source)
        return {**score_benchmark(bench, labels, res.correct), "spread": spread(res, degenerate_std)}, len(ds)
    if ("ref", key, batch_size) not in cache:
        cache["ref", key, batch_size] = pair_logprobs(ref, enc, resolve_pad_id(tok, ref), batch_size)
    ref_lp = cache["ref", key, batch_size]
    pol_lp = pair_logprobs(model, enc, resolve_pad_id(tok, model), batch_size)
    metrics = {}
    for mode in SCORED_MODES:
        res = policy_pairwise(
            model,
            tok,
            enc,
            mode=mode,
            logprobs=pol_lp,
            ref_logprobs=ref_lp if mode == "implicit" else None,
            batch_size=batch_size,
            ties=ties,
        )
        metrics[mode] = {**score_benchmark(bench, labels, res.correct), "spread": spread(res, degenerate_std)}
    return metrics, len(ds)


def spread(res: Any, degenerate_std: float = DEGENERATE_STD) -> dict[str, Any]:
    """How far a model's scores spread over the benchmark's responses: the standard deviation of
    every score (chosen and rejected) and the mean |margin|; ``degenerate`` when the standard
    deviation is below ``degenerate_std`` (a near-constant reward or implicit reward)."""
    return pair_spread(res.score_chosen, res.score_rejected, degenerate_std)


def pair_spread(score_chosen: Any, score_rejected: Any, degenerate_std: float = DEGENERATE_STD) -> dict[str, Any]:
    """:func:`spread` of the chosen and rejected scores of a set of pairs."""

    chosen, rejected = np.asarray(score_chosen, float), np.asarray(score_rejected, float)
    scores = np.concatenate([chosen, rejected])
    std = float(np.std(scores)) if scores.size else float("nan")
    margin = float(np.mean(np.abs(chosen - rejected))) if scores.size else 0.0
    return {"score_std": std, "mean_abs_margin": margin, "degenerate": bool(not std >= degenerate_std)}


def _evaluate_records(ds: Any, labels: list, tok: Any, model: Any, ref: Any, opts: Mapping[str, Any]) -> dict:
    """RewardBench 2 metrics (``opts``: :func:`evaluate_benchmark`'s settings): every completion of
    every record encoded by the one rule (core.eval.encoding) and scored once: ``r(x, y)`` of a reward
    model (``ref`` None), else a policy's summed ``log pi(y|x)`` (``likelihood``) and ``log pi(y|x) -
    log pi_ref(y|x)`` (``implicit``, beta = 1: every RewardBench 2 score is invariant to scaling). Each
    mode's metrics: ``scores`` (core.eval.rewardbench2.score_rewardbench2), ``accuracy`` (pairwise,
    over every (chosen, rejected) pair, ties per ``ties``) and ``spread``."""

    source, batch_size = opts["source"], opts["batch_size"]
    records, _ = group_records(rows_from(ds, source), labels)
    seqs = [
        encode_completion(
            tok, r.prompt, c, max_length=opts["max_length"], where=f"{source}: record {r.record_id!r}[{k}]"
        )
        for r in records
        for k, c in enumerate(r.completions)
    ]

    def metrics_of(flat: Any) -> dict[str, Any]:
        return _record_metrics(records, flat, opts["ties"], opts["degenerate_std"])

    pad_id = resolve_pad_id(tok, model)
    if ref is None:
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = pad_id  # as reward_model_pairwise
        return metrics_of(score_sequences(model, seqs, pad_id, batch_size))
    policy = sequence_logprobs(model, seqs, pad_id, batch_size).total
    reference = sequence_logprobs(ref, seqs, resolve_pad_id(tok, ref), batch_size).total
    flat = {"likelihood": policy, "implicit": policy - reference}
    return {mode: metrics_of(flat[mode]) for mode in SCORED_MODES}


def _record_metrics(records: Any, flat: Any, ties: str, degenerate_std: float) -> dict[str, Any]:
    """RewardBench 2 metrics of one score per completion (``flat``, records' completions in order):
    ``accuracy`` (pairwise), ``scores`` (core.eval.rewardbench2) and ``spread``."""

    bounds = np.cumsum([0] + [len(r.completions) for r in records])
    scores = [np.asarray(flat, dtype=float)[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    chosen, rejected = record_pairs(records, scores)
    return {"accuracy": accuracy(pairwise_outcomes(chosen, rejected, ties)),
            "scores": score_rewardbench2(records, scores).to_dict(),
            "spread": pair_spread(chosen, rejected, degenerate_std)}  # fmt: skip


def _mean_metrics(draws: list[dict[str, Any]]) -> dict[str, Any]:
    """The leaf-wise mean of metrics dicts of one layout (numbers averaged, NaN kept, flags dropped)."""

    first = draws[0]
    if isinstance(first, dict):
        return {k: _mean_metrics([d[k] for d in draws]) for k in first if not isinstance(first[k], bool)}
    if first is None or isinstance(first, str):
        return first
    return float(np.mean(np.asarray(draws, dtype=float)))


def _reference_records(ds: Any, labels: list, rule: str, ties: str, oracle: Any, draws: int) -> dict[str, Any]:
    """RewardBench 2 under a reference rule, one score per completion: ``longer`` its length in
    characters, ``oracle`` the oracle reward, ``random`` the mean over ``draws`` seeded draws of
    i.i.d. uniform scores (the expected best-of-n credit is 1/n; Ties has no closed form)."""

    records, _ = group_records(rows_from(ds, "reference"), labels)
    sizes = [len(r.completions) for r in records]
    if rule == "longer":
        flat = [float(len(response_text(c))) for r in records for c in r.completions]
    elif rule == "oracle":
        if oracle is None:
            raise ValueError("reference rule 'oracle' needs the oracle scorer")
        flat = [float(v) for r in records for v in oracle([r.prompt] * len(r.completions), list(r.completions))]
    elif rule == "random":
        rng = np.random.default_rng(0)
        runs = [_record_metrics(records, rng.random(sum(sizes)), ties, 0.0) for _ in range(draws)]
        return {**_mean_metrics(runs), "draws": draws}
    else:
        raise ValueError(f"unknown reference rule {rule!r} (known: {list(REFERENCE_RULES)})")
    return _record_metrics(records, flat, ties, 0.0)


def evaluate_reference(
    ds: Any, bench: Mapping[str, Any], rule: str, ties: str, oracle: Any = None, random_draws: int = 200
) -> tuple[dict[str, Any], int]:
    """Metrics of a reference rule (core.eval.reference) in the layout of both a reward model's and
    a policy's metrics (the rule is the same in every scoring mode), and the pair count; RewardBench 2
    by :func:`_reference_records` (``random_draws`` draws for its random row)."""

    ds, labels = benchmark_view(ds, bench)
    if bench["kind"] == "rewardbench2":
        scores = _reference_records(ds, labels, rule, ties, oracle, random_draws)
    else:
        scores = score_benchmark(bench, labels, reference_correct(ds, rule, ties, oracle))
    return {**scores, **{mode: scores for mode in SCORED_MODES}}, len(ds)
