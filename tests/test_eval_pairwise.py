"""Pairwise accuracy of tiny reward models and policies against hand-rolled per-example forwards."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from eval_tiny import ROWS, tiny_config, tiny_lm, tiny_rm, tiny_tokenizer

from core.eval.encoding import Batching, encode_pairs
from core.eval.pairwise import pair_logprobs, policy_pairwise, reward_model_pairwise

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(0)


@pytest.fixture(scope="module")
def rm():
    return tiny_rm(1)


def _ids(tok, prompt, completion):
    sep = " " if prompt and not prompt[-1].isspace() and not completion[0].isspace() else ""
    full = tok(prompt + sep + completion + "<eos>")["input_ids"]
    return full, len(tok(prompt)["input_ids"]) if prompt else 0


def _manual_reward(rm, ids):
    with torch.no_grad():
        return float(rm(torch.tensor([ids])).logits[0, 0])


def _manual_logp(lm, ids, start):
    with torch.no_grad():
        logp = torch.log_softmax(lm(torch.tensor([ids])).logits[0].double(), -1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(max(start, 1), len(ids)))


def test_reward_model_batched_equals_single_unpadded(tok, rm):
    res = reward_model_pairwise(rm, tok, ROWS, batch_size=3)
    for i, row in enumerate(ROWS):
        c, _ = _ids(tok, row["prompt"], row["chosen"])
        r, _ = _ids(tok, row["prompt"], row["rejected"])
        assert res.score_chosen[i] == pytest.approx(_manual_reward(rm, c), abs=1e-5)
        assert res.score_rejected[i] == pytest.approx(_manual_reward(rm, r), abs=1e-5)
    expected = [float(a > b) for a, b in zip(res.score_chosen, res.score_rejected, strict=True)]
    assert res.correct.tolist() == expected
    assert res.accuracy == pytest.approx(sum(expected) / len(ROWS))
    assert set(res.by("subset")) == {"chat/easy", "safety", "reasoning"}
    assert res.frame()["id"].tolist() == ["a", "b", "c", "d", "e"]
    assert not res.extra["truncated"].any()


def test_reward_model_truncation_keeps_the_end(tok, rm):
    res = reward_model_pairwise(rm, tok, ROWS, batch_size=2, max_length=20)
    row = ROWS[3]
    c, _ = _ids(tok, row["prompt"], row["chosen"])
    assert res.score_chosen[3] == pytest.approx(_manual_reward(rm, c[-20:]), abs=1e-5)
    assert res.extra["truncated"].tolist() == [False, True, True, True, False]


def test_policy_logprobs_match_manual_forward(tok, lm):
    enc = encode_pairs(ROWS, tok)
    lp = pair_logprobs(lm, enc, pad_id=0, batch_size=4)
    for i, row in enumerate(ROWS):
        for side, got in (("chosen", lp.chosen), ("rejected", lp.rejected)):
            ids, start = _ids(tok, row["prompt"], row[side])
            assert got.total[i] == pytest.approx(_manual_logp(lm, ids, start), abs=1e-4)
            assert got.n_tokens[i] == len(ids) - max(start, 1)


def test_policy_truncation_keep_end_and_keep_start(tok, lm):
    res = policy_pairwise(lm, tok, ROWS, mode="likelihood", max_length=15, batch_size=2)
    row = ROWS[3]
    ids, start = _ids(tok, row["prompt"], row["rejected"])
    cut = len(ids) - 15
    assert res.score_rejected[3] == pytest.approx(_manual_logp(lm, ids[cut:], max(start - cut, 0)), abs=1e-4)
    with pytest.raises(ValueError, match=r"row 3 \(id='d'\), key 'chosen'.*removed every completion token"):
        policy_pairwise(lm, tok, ROWS, mode="likelihood", max_length=15, truncation="keep_start")


def test_policy_equal_to_reference_scores_exactly_the_tie_rule(tok, lm):
    ref = copy.deepcopy(lm)
    res = policy_pairwise(lm, tok, ROWS, mode="implicit", ref_model=ref, beta=0.1, batch_size=2)
    assert (res.score_chosen == 0).all() and (res.score_rejected == 0).all()
    assert res.accuracy == 0.0
    assert res.with_ties("half").accuracy == 0.5
    half = policy_pairwise(lm, tok, ROWS, mode="implicit", ref_model=ref, ties="half")
    assert half.accuracy == 0.5


def test_implicit_reward_against_a_different_reference(tok, lm):
    ref = tiny_lm(7)
    res = policy_pairwise(lm, tok, ROWS, mode="implicit", ref_model=ref, beta=0.5, batch_size=3)
    ref_lp = pair_logprobs(ref, encode_pairs(ROWS, tok), pad_id=0, batch_size=3)
    pol = res.extra
    assert res.score_chosen == pytest.approx(0.5 * (pol["chosen_logp"] - ref_lp.chosen.total), abs=1e-9)
    again = policy_pairwise(lm, tok, ROWS, mode="implicit", ref_logprobs=ref_lp, beta=0.5)
    assert again.correct.tolist() == res.correct.tolist()
    with pytest.raises(ValueError, match="needs a reference"):
        policy_pairwise(lm, tok, ROWS, mode="implicit")


def test_reference_free_norms_and_likelihood(tok, lm):
    s = policy_pairwise(lm, tok, ROWS, mode="ref_free", norm="sum")
    a = policy_pairwise(lm, tok, ROWS, mode="ref_free", norm="avg")
    n = policy_pairwise(lm, tok, ROWS, mode="ref_free", norm="norm")
    assert a.score_chosen == pytest.approx(s.score_chosen / s.extra["chosen_tokens"], abs=1e-12)
    ids, start = _ids(tok, ROWS[4]["prompt"], ROWS[4]["chosen"])
    with torch.no_grad():
        logp = torch.log_softmax(lm(torch.tensor([ids])).logits[0].double(), -1)
    per_token = torch.tensor([float(logp[t - 1, ids[t]]) for t in range(start, len(ids))])
    assert n.score_chosen[4] == pytest.approx(-float(per_token.norm()), abs=1e-4)
    lik = policy_pairwise(lm, tok, ROWS, mode="likelihood")
    lik_avg = policy_pairwise(lm, tok, ROWS, mode="likelihood", length_normalize=True)
    assert lik.score_rejected.tolist() == s.score_rejected.tolist()
    assert lik_avg.score_rejected.tolist() == a.score_rejected.tolist()
    with pytest.raises(ValueError, match="mode must be one of"):
        policy_pairwise(lm, tok, ROWS, mode="dpo")


def test_peft_policy_uses_its_base_model_as_reference(tok):
    from peft import LoraConfig, get_peft_model

    policy = get_peft_model(tiny_lm(3), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    res = policy_pairwise(policy, tok, ROWS[:3], mode="implicit")  # lora_B = 0: policy == reference
    assert res.accuracy == 0.0 and res.with_ties("half").accuracy == 0.5
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    res = policy_pairwise(policy, tok, ROWS[:3], mode="implicit")
    assert (res.score_chosen != 0).all()
    base_lp = pair_logprobs(tiny_lm(3), encode_pairs(ROWS[:3], tok), pad_id=0)  # the untouched base
    assert res.extra["ref_chosen_logp"] == pytest.approx(base_lp.chosen.total, abs=1e-5)
    assert not res.extra["chosen_logp"] == pytest.approx(base_lp.chosen.total, abs=1e-3)


def test_summary_counts_ties_and_truncation(tok, lm):
    res = policy_pairwise(lm, tok, ROWS, mode="implicit", ref_model=copy.deepcopy(lm), max_length=20)
    assert res.summary() == {
        "accuracy": 0.0,
        "n": 5,
        "ties": "wrong",
        "kind": "policy:implicit",
        "n_tied": 5,
        "n_truncated": 3,
        "n_merged_turns": 0,
    }


def test_benchmark_cache_computes_encoding_and_reference_once_with_the_same_metrics(tok, monkeypatch):
    """evaluate_benchmark's ``cache`` (kept across a job's seeds): the second policy reuses the
    benchmark's encoding and pi_ref's log-probs, one policy forward serves both modes, and every
    metric equals the uncached evaluation's; a reward model reuses the encoding."""
    import datasets

    from core.eval import benchmarks, encoding, pairwise

    ds = datasets.Dataset.from_list(ROWS)
    bench = {"kind": "pairs", "label": "t"}
    ref, policies = tiny_lm(0), [tiny_lm(1), tiny_lm(2)]
    kw = dict(batch_size=2, max_length=64, ties="wrong", source="rows.parquet")
    plain = [benchmarks.evaluate_benchmark(ds, bench, tok, p, ref, **kw) for p in policies]
    forwards, encodes = [], []
    real_lp, real_enc = pairwise.pair_logprobs, encoding.encode_pairs
    monkeypatch.setattr(benchmarks, "pair_logprobs", lambda m, *a: forwards.append(m) or real_lp(m, *a))
    monkeypatch.setattr(benchmarks, "encode_pairs", lambda *a, **k: encodes.append(1) or real_enc(*a, **k))
    cache = {}
    cached = [benchmarks.evaluate_benchmark(ds, bench, tok, p, ref, cache=cache, **kw) for p in policies]
    assert cached == plain
    assert [m is ref for m in forwards] == [True, False, False]  # pi_ref once, each policy once
    assert len(encodes) == 1
    rm = tiny_rm(1)
    assert benchmarks.evaluate_benchmark(ds, bench, tok, rm, None, cache=cache, **kw) == (
        benchmarks.evaluate_benchmark(ds, bench, tok, rm, None, **kw)
    )
    assert len(encodes) == 2  # the uncached call only


def test_long_large_vocabulary_logprobs_are_chunked_with_the_same_values(tok):
    """A 64K-vocabulary model (hub-sized vocabulary, tiny trunk): computed with a logit budget 64
    times smaller than the batch's logits, the response log-probs equal the one-forward values
    within 1e-6, no output-layer call ever holds more logits than the budget, and a PEFT policy
    (LoRA on the trunk) takes the same path."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    from core.eval.pairwise import sequence_logprobs

    torch.manual_seed(0)
    big = LlamaForCausalLM(tiny_config(vocab_size=65536)).eval()
    encoded = encode_pairs(ROWS[:4], tok)
    seqs = encoded.chosen + encoded.rejected
    whole = sequence_logprobs(big, seqs, pad_id=0, batch_size=8)
    width = max(len(s.ids) for s in seqs)
    budget = 8 * (width - 1) * 65536 // 64
    sizes = []
    hook = big.get_output_embeddings().register_forward_hook(lambda m, i, o: sizes.append(o.numel()))
    chunked = sequence_logprobs(big, seqs, pad_id=0, batch_size=8, max_logits=budget)
    hook.remove()
    assert len(sizes) >= 64 and max(sizes) <= budget
    assert chunked.total == pytest.approx(whole.total, abs=1e-6) and (chunked.n_tokens == whole.n_tokens).all()
    assert chunked.sq == pytest.approx(whole.sq, abs=1e-5)
    policy = get_peft_model(copy.deepcopy(big), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    lora_whole = sequence_logprobs(policy, seqs, pad_id=0, batch_size=8)
    lora_chunked = sequence_logprobs(policy, seqs, pad_id=0, batch_size=8, max_logits=budget)
    assert lora_chunked.total == pytest.approx(lora_whole.total, abs=1e-6)
    assert not lora_whole.total == pytest.approx(whole.total, abs=1e-3)  # the adapters are in the chunked path


def test_a_token_budget_bounds_every_scoring_batch_with_the_same_scores(tok, lm, rm):
    """eval.max_batch_tokens (core.eval.encoding.Batching): no forward sees more padded tokens than
    the budget, and the log-probs and rewards equal the row-batched ones."""
    enc = encode_pairs(ROWS, tok)
    widths = []
    hook = lm.register_forward_pre_hook(lambda m, args, kw: widths.append(kw["input_ids"].numel()), with_kwargs=True)
    budget = max(len(s.ids) for s in enc.chosen + enc.rejected) + 1  # one longest sequence per batch
    try:
        bounded = pair_logprobs(lm, enc, pad_id=0, batch_size=Batching(rows=8, tokens=budget))
    finally:
        hook.remove()
    assert max(widths) <= budget and len(widths) > 2  # 10 sequences would be 2 batches of 8 rows
    rows = pair_logprobs(lm, enc, pad_id=0, batch_size=8)
    np.testing.assert_allclose(bounded.chosen.total, rows.chosen.total, atol=1e-5)
    np.testing.assert_allclose(bounded.rejected.total, rows.rejected.total, atol=1e-5)
    res = reward_model_pairwise(rm, tok, ROWS, batch_size=Batching(rows=8, tokens=budget))
    np.testing.assert_allclose(
        res.score_chosen, reward_model_pairwise(rm, tok, ROWS, batch_size=8).score_chosen, atol=1e-5
    )
