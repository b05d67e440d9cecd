"""The papers' data stages on normalised datasets (each one a workflow rule).

filter sources (DR paper §5: Unified-Feedback without ``hh-rlhf`` / ``chatbot_arena_conversations``)
-> deterministic train/val/test split -> subsample -> oracle relabelling (distillation paper §6.1:
chosen = the response the oracle reward scores higher) -> length-bias subsample ``D_rho`` (the
fraction of pairs whose chosen response is "longer", i.e. has at least 10% more tokens than the
rejected one, equals rho) -> ensemble subsets ``D_{rho,b}`` (subsamples of ``D_rho`` with
longer-preferred fraction b, for the e-DPO reward ensemble).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import datasets
import numpy as np

from core.data.schema import column_kinds, preference_features, text_of

Scorer = Callable[[list[Any], list[Any]], Sequence[float]]

LONGER, SIMILAR, SHORTER = 1, 0, -1


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_size(n: int, what: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")


def filter_sources(
    ds: datasets.Dataset,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    *,
    strict: bool = True,
    what: str = "filter_sources",
) -> datasets.Dataset:
    """Keep the rows whose ``source`` is in ``include`` (all when None) and not in ``exclude``.

    With ``strict`` (default) a listed source that the dataset does not have is an error (a
    misspelt name would otherwise silently filter nothing); the message lists the sources present.
    A filter that keeps no row is always an error. ``what`` starts the messages (the workflow
    names the variant).
    """
    include_set = set(include) if include is not None else None
    exclude_set = set(exclude or ())
    present = set(ds.unique("source")) if len(ds) else set()
    if strict:
        unknown = sorted(((include_set or set()) | exclude_set) - present)
        if unknown:
            raise ValueError(f"{what}: no rows with source {unknown}; sources present: {sorted(present)}")
    keep = [
        i
        for i, src in enumerate(ds["source"])
        if (include_set is None or src in include_set) and src not in exclude_set
    ]
    if not keep:
        kept = "every source" if include_set is None else f"include={sorted(include_set)}"
        raise ValueError(
            f"{what}: no row left of {len(ds)} ({kept}, exclude={sorted(exclude_set)}); "
            f"sources present: {sorted(present)}"
        )
    return ds.select(keep)


def split_dataset(
    ds: datasets.Dataset,
    fractions: Mapping[str, float] | Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> datasets.DatasetDict:
    """Deterministic train/val/test split: a seeded permutation cut by ``fractions``.

    ``fractions`` is ``(train, val, test)`` or a mapping with those keys, summing to 1; val and
    test get ``round(f * n)`` rows, train the rest. Rows keep their original order in each split.
    """
    _check_seed(seed)
    if isinstance(fractions, Mapping):
        extra = set(fractions) - {"train", "val", "test"}
        if extra:
            raise ValueError(f"split_dataset: fractions keys must be train/val/test, got {sorted(extra)}")
        fr = [float(fractions.get(k, 0.0)) for k in ("train", "val", "test")]
    else:
        fr = [float(f) for f in fractions]
        if len(fr) != 3:
            raise ValueError(f"split_dataset: fractions must be (train, val, test), got {fractions!r}")
    if any(f < 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-9):
        raise ValueError(f"split_dataset: fractions must be non-negative and sum to 1, got {fr}")
    n = len(ds)
    n_val, n_test = math.floor(fr[1] * n + 0.5), math.floor(fr[2] * n + 0.5)
    n_val = min(n_val, n)
    n_test = min(n_test, n - n_val)
    perm = np.random.default_rng(seed).permutation(n)
    parts = {
        "val": perm[:n_val],
        "test": perm[n_val : n_val + n_test],
        "train": perm[n_val + n_test :],
    }
    return datasets.DatasetDict({name: ds.select(sorted(parts[name].tolist())) for name in ("train", "val", "test")})


def split_by_prompt(
    ds: datasets.Dataset, val: float, test: float, seed: int, stratify: str | None = "source"
) -> datasets.DatasetDict:
    """Train/val/test splits of the *prompts*: every pair of a prompt lands in the same split, so
    no prompt is in two. Prompts are shuffled with ``seed`` within each value of ``stratify``
    (default: each source, in first-seen order) and ``round(f * n)`` of them go to val and test."""
    _check_seed(seed)
    if not (0 <= val and 0 <= test and val + test < 1):
        raise ValueError(f"split_by_prompt: val and test must be >= 0 with val + test < 1, got {val}, {test}")
    prompts = [text_of(p) for p in ds["prompt"]]
    groups = ds[stratify] if stratify else [None] * len(ds)
    by_group: dict[Any, list[str]] = {}
    for prompt, group in zip(prompts, groups, strict=True):
        by_group.setdefault(group, []).append(prompt)
    rng = np.random.default_rng(seed)
    part: dict[str, str] = {}
    for members in by_group.values():
        unique = list(dict.fromkeys(members))
        order = rng.permutation(len(unique))
        n_val, n_test = math.floor(val * len(unique) + 0.5), math.floor(test * len(unique) + 0.5)
        for rank, i in enumerate(order):
            part.setdefault(unique[i], "val" if rank < n_val else "test" if rank < n_val + n_test else "train")
    index = {name: [i for i, p in enumerate(prompts) if part[p] == name] for name in ("train", "val", "test")}
    return datasets.DatasetDict({name: ds.select(index[name]) for name in ("train", "val", "test")})


def subsample(ds: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """``n`` rows drawn uniformly without replacement (seeded); original order kept."""
    _check_size(n)
    _check_seed(seed)
    if n > len(ds):
        raise ValueError(f"subsample: asked for {n} rows but the dataset has {len(ds)}")
    idx = np.random.default_rng(seed).choice(len(ds), size=n, replace=False)
    return ds.select(sorted(idx.tolist()))


def oracle_relabel(
    ds: datasets.Dataset, scorer: Scorer, *, batch_size: int = 64
) -> tuple[datasets.Dataset, float, int]:
    """Relabel pairs with an oracle reward ``r*`` (distillation paper §6.1).

    ``scorer(prompts, completions) -> scores`` gives ``r*(x, y)`` for a batch. Each pair becomes
    (chosen, rejected) with ``r*(x, chosen) > r*(x, rejected)``; exact ties are dropped. The
    oracle scores are stored as ``chosen_score/rejected_score``. Returns the relabelled dataset,
    the flip rate (fraction of the kept pairs whose label was swapped) and the number of ties.
    """
    _check_size(batch_size, "batch_size")
    kinds = column_kinds(ds)
    cols = ds.to_dict()
    n = len(ds)

    def score(column: str) -> np.ndarray:
        out: list[float] = []
        for start in range(0, n, batch_size):
            prompts = cols["prompt"][start : start + batch_size]
            batch = list(scorer(prompts, cols[column][start : start + batch_size]))
            if len(batch) != len(prompts):
                raise ValueError(f"oracle_relabel: scorer returned {len(batch)} scores for {len(prompts)} inputs")
            out.extend(float(s) for s in batch)
        arr = np.asarray(out, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("oracle_relabel: scorer returned a non-finite score")
        return arr

    s_chosen, s_rejected = score("chosen"), score("rejected")
    flip = s_rejected > s_chosen
    keep = np.flatnonzero(s_chosen != s_rejected)
    n_ties = n - len(keep)
    if len(keep) == 0 and n > 0:
        raise ValueError(f"oracle_relabel: all {n} pairs are exact ties under the oracle")
    new = dict(cols)
    new["chosen"] = [r if f else c for c, r, f in zip(cols["chosen"], cols["rejected"], flip, strict=True)]
    new["rejected"] = [c if f else r for c, r, f in zip(cols["chosen"], cols["rejected"], flip, strict=True)]
    if "chosen_model" in cols:  # who wrote each response follows the response
        models = list(zip(cols["chosen_model"], cols["rejected_model"], flip, strict=True))
        new["chosen_model"] = [r if f else c for c, r, f in models]
        new["rejected_model"] = [c if f else r for c, r, f in models]
    new["chosen_score"] = np.maximum(s_chosen, s_rejected).tolist()
    new["rejected_score"] = np.minimum(s_chosen, s_rejected).tolist()
    features = datasets.Features({k: v for k, v in preference_features(kinds).items() if k in new})
    out = datasets.Dataset.from_dict(new, features=features).select(keep.tolist())
    flip_rate = float(flip[keep].mean()) if len(keep) else 0.0
    return out, flip_rate, n_ties


def count_tokens(value: Any, tokenizer: Any) -> int:
    """Tokens of a completion (a string, or the joined contents of a message list).

    ``tokenizer`` is a HF tokenizer (``encode(text, add_special_tokens=False)``), a
    ``tokenizers.Tokenizer``, or any callable ``text -> list of tokens``.
    """
    text = text_of(value)
    if hasattr(tokenizer, "encode"):
        encoded = tokenizer.encode(text, add_special_tokens=False)
        return len(encoded.ids) if hasattr(encoded, "ids") else len(encoded)
    if callable(tokenizer):
        return len(tokenizer(text))
    raise ValueError(f"tokenizer must have .encode or be callable, got {type(tokenizer).__name__}")


def length_classes(ds: datasets.Dataset, tokenizer: Any, margin: float = 0.1) -> np.ndarray:
    """Per pair: +1 when chosen has at least ``(1+margin)`` times the rejected tokens ("longer
    preferred"), -1 when rejected has at least ``(1+margin)`` times the chosen tokens, else 0.

    The comparison is exact in rationals, so 11 vs 10 tokens is "longer" at margin 0.1.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    m = Fraction(str(margin)) + 1
    out = np.zeros(len(ds), dtype=np.int8)
    cols = ds.select_columns(["chosen", "rejected"]).to_dict()
    for i, (c, r) in enumerate(zip(cols["chosen"], cols["rejected"], strict=True)):
        lc, lr = count_tokens(c, tokenizer), count_tokens(r, tokenizer)
        if lc >= m * lr:
            out[i] = LONGER
        elif lr >= m * lc:
            out[i] = SHORTER
    return out


def longer_preferred_fraction(ds: datasets.Dataset, tokenizer: Any, margin: float = 0.1) -> float:
    """Fraction of pairs whose chosen response is longer (the rho of the distillation paper)."""
    if len(ds) == 0:
        raise ValueError("longer_preferred_fraction: empty dataset")
    return float(np.mean(length_classes(ds, tokenizer, margin) == LONGER))


def _draw(
    classes: np.ndarray,
    rho: float,
    n: int,
    rng: np.random.Generator,
    keep_similar: bool,
    margin: float,
    what: str,
) -> list[int]:
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"{what}: rho must be in [0, 1], got {rho}")
    _check_size(n)
    longer = np.flatnonzero(classes == LONGER)
    shorter = np.flatnonzero(classes == SHORTER)
    similar = np.flatnonzero(classes == SIMILAR)
    others = np.sort(np.concatenate([shorter, similar])) if keep_similar else shorter
    k = math.floor(rho * n + 0.5)
    if k > len(longer) or n - k > len(others):
        n_max = max(
            (
                m
                for m in range(min(n, len(longer) + len(others)), 0, -1)
                if math.floor(rho * m + 0.5) <= len(longer) and m - math.floor(rho * m + 0.5) <= len(others)
            ),
            default=0,
        )
        other_kind = "not longer (shorter or similar)" if keep_similar else "shorter"
        raise ValueError(
            f"{what}: cannot draw n={n} pairs at rho={rho}: needs {k} pairs whose chosen response "
            f"has >= {margin:.0%} more tokens and {n - k} whose chosen is {other_kind}; the pool of "
            f"{len(classes)} pairs has {len(longer)} longer, {len(shorter)} shorter and {len(similar)} "
            f"similar-length ({'counted' if keep_similar else 'not used'}); the largest n at this rho is {n_max}"
        )
    picked = np.concatenate(
        [
            rng.choice(longer, size=k, replace=False),
            rng.choice(others, size=n - k, replace=False),
        ]
    )
    return sorted(picked.tolist())


def length_bias_subsample(
    ds: datasets.Dataset,
    rho: float,
    n: int,
    tokenizer: Any,
    seed: int,
    *,
    margin: float = 0.1,
    keep_similar: bool = False,
) -> datasets.Dataset:
    """``D_rho``: ``n`` pairs of which ``round(rho * n)`` have a longer chosen response
    (distillation paper §6.1), so the longer-preferred fraction is rho within half a pair.

    The other pairs have a shorter chosen response; with ``keep_similar=True`` pairs whose two
    responses are within the margin may fill them too. Raises ValueError naming what the pool
    has when it cannot meet rho at this size.
    """
    _check_seed(seed)
    classes = length_classes(ds, tokenizer, margin)
    idx = _draw(classes, rho, n, np.random.default_rng(seed), keep_similar, margin, "length_bias_subsample")
    return ds.select(idx)


def ensemble_subsets(
    ds: datasets.Dataset,
    rho: float,
    bs: Sequence[float],
    n: int,
    tokenizer: Any,
    seed: int,
    *,
    margin: float = 0.1,
    keep_similar: bool = False,
) -> dict[float, datasets.Dataset]:
    """``{b: D_{rho,b}}``: from ``D_rho`` (``ds``), for each b a subsample of ``n`` pairs whose
    longer-preferred fraction is b (distillation paper §6.1, e-DPO's reward-model ensemble).

    ``ds`` must be a ``D_rho`` (its longer-preferred count within one pair of ``rho * len(ds)``).
    Each subset's draw is seeded by ``(seed, b)``, so adding a b does not change the others.
    """
    _check_seed(seed)
    if len(set(bs)) != len(bs) or not bs:
        raise ValueError(f"ensemble_subsets: bs must be a non-empty list of distinct values, got {list(bs)}")
    classes = length_classes(ds, tokenizer, margin)
    n_longer = int(np.sum(classes == LONGER))
    if abs(n_longer - rho * len(ds)) > 1:
        raise ValueError(
            f"ensemble_subsets: the dataset is not D_rho for rho={rho}: {n_longer} of {len(ds)} pairs "
            f"({n_longer / max(len(ds), 1):.3f}) have a longer chosen response"
        )
    out: dict[float, datasets.Dataset] = {}
    for b in bs:
        if not 0.0 <= float(b) <= 1.0:
            raise ValueError(f"ensemble_subsets: every b must be in [0, 1], got {b}")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), round(float(b) * 1_000_000)]))
        idx = _draw(classes, float(b), n, rng, keep_similar, margin, f"ensemble_subsets (b={b})")
        out[b] = ds.select(idx)
    return out
