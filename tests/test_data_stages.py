"""The papers' data stages: source filters, splits, subsampling, oracle relabelling, D_rho, D_{rho,b}."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import (
    count_tokens,
    ensemble_subsets,
    filter_sources,
    length_bias_subsample,
    length_classes,
    longer_preferred_fraction,
    oracle_relabel,
    rows_to_dataset,
    split_dataset,
    subsample,
)


def words(text: str) -> list[str]:
    return text.split()


def _pair(i: int, n_chosen: int, n_rejected: int, source: str = "s") -> dict:
    return {
        "id": f"p{i}",
        "prompt": f"question {i}",
        "chosen": " ".join(["c"] * n_chosen),
        "rejected": " ".join(["r"] * n_rejected),
        "source": source,
    }


def pool(n_longer: int, n_shorter: int, n_similar: int = 0):
    """Pairs whose chosen response is 2x longer, 2x shorter, or of equal length (whitespace tokens)."""
    rows = [_pair(i, 10, 5) for i in range(n_longer)]
    rows += [_pair(n_longer + i, 5, 10) for i in range(n_shorter)]
    rows += [_pair(n_longer + n_shorter + i, 6, 6) for i in range(n_similar)]
    return rows_to_dataset([r | {"chosen_score": None, "rejected_score": None, "domain": None} for r in rows])


@pytest.fixture
def mixed_sources():
    sources = ["hh-rlhf", "chatbot_arena_conversations", "ultra_feedback_clean", "nectar"]
    rows = [_pair(i, 3, 2, sources[i % 4]) for i in range(40)]
    return rows_to_dataset([r | {"chosen_score": None, "rejected_score": None, "domain": None} for r in rows])


def test_filter_sources_include_exclude_strict(mixed_sources):
    no_hh = filter_sources(mixed_sources, exclude=["hh-rlhf", "chatbot_arena_conversations"])
    assert set(no_hh["source"]) == {"ultra_feedback_clean", "nectar"} and len(no_hh) == 20
    only = filter_sources(mixed_sources, include=["nectar", "hh-rlhf"], exclude=["hh-rlhf"])
    assert set(only["source"]) == {"nectar"} and len(only) == 10
    with pytest.raises(ValueError, match=r"no rows with source \['hh_rlhf'\]; sources present"):
        filter_sources(mixed_sources, exclude=["hh_rlhf"])
    assert len(filter_sources(mixed_sources, exclude=["hh_rlhf"], strict=False)) == 40


def test_filter_sources_refuses_an_empty_result_naming_the_variant(mixed_sources):
    everything = ["hh-rlhf", "chatbot_arena_conversations", "ultra_feedback_clean", "nectar"]
    with pytest.raises(ValueError, match=r"^variant 'v' \(config key data.variants.v\): no row left of 40 "):
        filter_sources(mixed_sources, exclude=everything, what="variant 'v' (config key data.variants.v)")
    with pytest.raises(ValueError, match=r"no row left of 40 \(include=\['nectar'\], exclude=\['nectar'\]\)"):
        filter_sources(mixed_sources, include=["nectar"], exclude=["nectar"])
    with pytest.raises(ValueError, match=r"^filter_sources: no row left .* sources present: \['chatbot"):
        filter_sources(mixed_sources, include=[], strict=False)


def test_split_is_a_seeded_partition(mixed_sources):
    parts = split_dataset(mixed_sources, (0.7, 0.1, 0.2), seed=3)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 28, "val": 4, "test": 8}
    ids = [set(parts[k]["id"]) for k in ("train", "val", "test")]
    assert set.union(*ids) == set(mixed_sources["id"]) and sum(map(len, ids)) == 40
    again = split_dataset(mixed_sources, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=3)
    assert all(again[k]["id"] == parts[k]["id"] for k in parts)
    other = split_dataset(mixed_sources, (0.7, 0.1, 0.2), seed=4)
    assert other["test"]["id"] != parts["test"]["id"]
    with pytest.raises(ValueError, match="sum to 1"):
        split_dataset(mixed_sources, (0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="train/val/test"):
        split_dataset(mixed_sources, {"train": 0.9, "dev": 0.1})


def test_subsample_seeded_without_replacement(mixed_sources):
    a, b = subsample(mixed_sources, 15, seed=1), subsample(mixed_sources, 15, seed=1)
    assert a["id"] == b["id"] and len(set(a["id"])) == 15
    assert subsample(mixed_sources, 15, seed=2)["id"] != a["id"]
    with pytest.raises(ValueError, match="asked for 41 rows but the dataset has 40"):
        subsample(mixed_sources, 41, seed=0)


def test_oracle_relabel_flips_and_drops_ties():
    rows = [
        _pair(0, 4, 2),  # oracle agrees (prefers more tokens)
        _pair(1, 2, 4),  # oracle disagrees -> flipped
        _pair(2, 3, 3),  # exact tie -> dropped
        _pair(3, 1, 5),  # flipped
    ]
    ds = rows_to_dataset([r | {"chosen_score": 0.0, "rejected_score": 1.0, "domain": "d"} for r in rows])
    seen_batches = []

    def oracle(prompts, completions):
        seen_batches.append(len(prompts))
        return [float(len(c.split())) for c in completions]

    out, flip_rate, n_ties = oracle_relabel(ds, oracle, batch_size=3)
    assert seen_batches == [3, 1, 3, 1]
    assert n_ties == 1 and math.isclose(flip_rate, 2 / 3)
    assert out["id"] == ["p0", "p1", "p3"]
    assert all(len(c.split()) > len(r.split()) for c, r in zip(out["chosen"], out["rejected"], strict=True))
    assert out["chosen_score"] == [4.0, 4.0, 5.0] and out["rejected_score"] == [2.0, 2.0, 1.0]
    assert out.features == ds.features
    with pytest.raises(ValueError, match="returned 1 scores for 3 inputs"):
        oracle_relabel(ds, lambda p, c: [0.0], batch_size=3)
    with pytest.raises(ValueError, match="non-finite"):
        oracle_relabel(ds, lambda p, c: [float("nan")] * len(c))


def test_ten_percent_margin_is_exact():
    ds = rows_to_dataset([_pair(0, 11, 10), _pair(1, 10, 10), _pair(2, 10, 11), _pair(3, 21, 20), _pair(4, 10, 9)])
    # 11 vs 10 is exactly 10% more (a float 10 * 1.1 would miss it); 21 vs 20 is only 5% more.
    assert length_classes(ds, words).tolist() == [1, 0, -1, 0, 1]
    assert longer_preferred_fraction(ds, words) == 0.4
    assert length_classes(ds, words, margin=0.0).tolist() == [1, 1, -1, 1, 1]


def test_count_tokens_with_hf_tokenizer_and_messages(tiny_tokenizer):
    assert count_tokens("the cat is red", tiny_tokenizer) == 4
    msgs = [{"role": "assistant", "content": "yes the dog"}, {"role": "user", "content": "thanks"}]
    assert count_tokens(msgs, tiny_tokenizer) == 4
    assert count_tokens("a b c", words) == 3


@pytest.mark.parametrize("rho", [0.0, 0.2, 0.35, 0.5, 0.8, 1.0])
def test_length_bias_subsample_meets_rho(rho):
    ds = pool(n_longer=40, n_shorter=40, n_similar=10)
    n = 30
    out = length_bias_subsample(ds, rho, n, words, seed=0)
    classes = length_classes(out, words)
    assert len(out) == n and len(set(out["id"])) == n
    assert abs(np.mean(classes == 1) - rho) <= 1 / n
    assert not np.any(classes == 0)  # similar-length pairs are not used by default
    assert length_bias_subsample(ds, rho, n, words, seed=0)["id"] == out["id"]


def test_length_bias_keep_similar_and_seed():
    ds = pool(n_longer=10, n_shorter=0, n_similar=20)
    with pytest.raises(ValueError, match="0 shorter"):
        length_bias_subsample(ds, 0.5, 10, words, seed=0)
    out = length_bias_subsample(ds, 0.5, 10, words, seed=0, keep_similar=True)
    assert (length_classes(out, words) == 1).sum() == 5
    assert length_bias_subsample(ds, 0.5, 10, words, seed=1, keep_similar=True)["id"] != out["id"]


def test_length_bias_error_names_the_pool():
    ds = pool(n_longer=5, n_shorter=50, n_similar=3)
    with pytest.raises(ValueError) as err:
        length_bias_subsample(ds, 0.8, 20, words, seed=0)
    msg = str(err.value)
    assert "needs 16 pairs whose chosen response has >= 10% more tokens" in msg
    assert "5 longer, 50 shorter and 3 similar-length" in msg
    assert "the largest n at this rho is 6" in msg
    with pytest.raises(ValueError, match="rho must be in"):
        length_bias_subsample(ds, 1.5, 5, words, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    n_longer=st.integers(0, 30),
    n_shorter=st.integers(0, 30),
    rho=st.floats(0, 1),
    n=st.integers(1, 40),
)
def test_length_bias_either_exact_or_clear_error(n_longer, n_shorter, rho, n):
    ds = pool(n_longer, n_shorter)
    k = math.floor(rho * n + 0.5)
    if k <= n_longer and n - k <= n_shorter:
        out = length_bias_subsample(ds, rho, n, words, seed=0)
        assert len(out) == n and int((length_classes(out, words) == 1).sum()) == k
    else:
        with pytest.raises(ValueError, match="cannot draw"):
            length_bias_subsample(ds, rho, n, words, seed=0)


def test_ensemble_subsets_have_fraction_b_and_stable_seeds():
    ds = length_bias_subsample(pool(100, 100), 0.5, 100, words, seed=0)
    bs = [0.2, 0.4, 0.5, 0.6, 0.8]
    subsets = ensemble_subsets(ds, 0.5, bs, 40, words, seed=7)
    assert list(subsets) == bs
    parent_ids = set(ds["id"])
    for b, sub in subsets.items():
        assert len(sub) == 40 and set(sub["id"]) <= parent_ids
        assert int((length_classes(sub, words) == 1).sum()) == round(b * 40)
    alone = ensemble_subsets(ds, 0.5, [0.6], 40, words, seed=7)
    assert alone[0.6]["id"] == subsets[0.6]["id"]
    assert ensemble_subsets(ds, 0.5, [0.6], 40, words, seed=8)[0.6]["id"] != subsets[0.6]["id"]
    with pytest.raises(ValueError, match="not D_rho for rho=0.3"):
        ensemble_subsets(ds, 0.3, bs, 40, words, seed=7)
    with pytest.raises(ValueError, match=r"b=0.8.*largest n at this rho is 63"):
        ensemble_subsets(ds, 0.5, [0.8], 70, words, seed=7)
    with pytest.raises(ValueError, match="distinct"):
        ensemble_subsets(ds, 0.5, [0.2, 0.2], 10, words, seed=7)
