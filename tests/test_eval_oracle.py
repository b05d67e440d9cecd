"""Oracle-reward advantage: bootstrap intervals, Wald tests, seeded generation."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from eval_tiny import tiny_lm, tiny_rm, tiny_tokenizer

from core.eval.generation import GenerationSettings, generate_completions
from core.eval.oracle import (
    bootstrap_mean_ci,
    oracle_advantage,
    reward_model_oracle,
    sample_and_score,
    score_with_oracle,
    wald_test,
)

torch.set_num_threads(1)


def test_bootstrap_interval_contains_mean_narrows_and_is_seeded():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 2.0, 40), rng.normal(1.0, 2.0, 4000)
    m_s, lo_s, hi_s = bootstrap_mean_ci(small, seed=3)
    m_l, lo_l, hi_l = bootstrap_mean_ci(large, seed=3)
    assert lo_s < m_s < hi_s and lo_l < m_l < hi_l
    assert m_s == pytest.approx(small.mean()) and m_l == pytest.approx(large.mean())
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # width ~ 1/sqrt(n): 10x more data, ~1/10 width
    assert (hi_s - lo_s) == pytest.approx(2 * 1.96 * small.std(ddof=1) / math.sqrt(40), rel=0.25)
    assert bootstrap_mean_ci(small, seed=3) == (m_s, lo_s, hi_s)
    assert bootstrap_mean_ci(small, seed=4) != (m_s, lo_s, hi_s)
    with pytest.raises(ValueError, match=">= 1000"):
        bootstrap_mean_ci(small, n_resamples=999)


def test_oracle_advantage_paired_and_unpaired():
    rng = np.random.default_rng(1)
    sft = rng.normal(0.0, 1.0, 200)
    pol = sft + 0.5 + rng.normal(0.0, 0.1, 200)
    adv = oracle_advantage(pol, sft, seed=0)
    assert adv.advantage == pytest.approx(pol.mean() - sft.mean(), abs=1e-12)
    assert adv.ci_low < adv.advantage < adv.ci_high
    assert adv.std_error == pytest.approx(np.std(pol - sft, ddof=1) / math.sqrt(200))
    unpaired = oracle_advantage(pol, sft, paired=False, seed=0)
    assert unpaired.advantage == adv.advantage
    assert unpaired.ci_high - unpaired.ci_low > 3 * (adv.ci_high - adv.ci_low)  # pairing removes prompt noise
    with pytest.raises(ValueError, match="one reward per prompt"):
        oracle_advantage(pol, sft[:10])


def test_wald_test_by_hand():
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 0.5, 1.0, 0.5]
    se = math.sqrt(statistics.variance(a) / 4 + statistics.variance(b) / 4)
    z = (2.5 - 0.5) / se
    t = wald_test(a, b)
    assert t.difference == pytest.approx(2.0) and t.z == pytest.approx(z)
    assert t.p_value == pytest.approx(2 * (1 - statistics.NormalDist().cdf(z)), abs=1e-12)
    d = [x - y for x, y in zip(a, b, strict=True)]
    tp = wald_test(a, b, paired=True)
    assert tp.z == pytest.approx(statistics.mean(d) / (statistics.stdev(d) / 2))
    same = wald_test([1.0, 1.0], [1.0, 1.0])
    assert same.z == 0.0 and same.p_value == 1.0
    assert wald_test([1.0, 1.0], [0.0, 0.0]).p_value == 0.0


PROMPTS = ["Tell me a joke.", "Hi", [{"role": "user", "content": "Why?"}], "Count to three"]


def test_generation_is_deterministic_under_a_seed():
    tok, lm = tiny_tokenizer(chat_template=True), tiny_lm(2)
    settings = GenerationSettings(max_new_tokens=8, temperature=1.0, seed=11, batch_size=3)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = generate_completions(lm, tok, PROMPTS, settings)
    assert torch.rand(1) == before  # the caller's RNG stream is untouched
    again = generate_completions(lm, tok, PROMPTS, settings)
    assert first == again and len(first) == 4 and any(first)
    other = generate_completions(lm, tok, PROMPTS, GenerationSettings(max_new_tokens=8, seed=12, batch_size=3))
    assert other != first
    greedy = GenerationSettings(max_new_tokens=8, do_sample=False, batch_size=1)
    greedy_b = GenerationSettings(max_new_tokens=8, do_sample=False, batch_size=4)
    assert generate_completions(lm, tok, PROMPTS, greedy) == generate_completions(lm, tok, PROMPTS, greedy_b)
    with pytest.raises(ValueError, match=r"unknown generation setting\(s\) \['temp'\]"):
        GenerationSettings.from_mapping({"temp": 1.0})
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings.from_mapping({"top_p": 0.0})


def test_sample_and_score_with_callable_and_reward_model_oracles():
    tok, lm = tiny_tokenizer(), tiny_lm(2)
    prompts = ["Hello", "Tell me more", "Why", "A"]
    settings = GenerationSettings(max_new_tokens=6, seed=5, batch_size=2)
    by_length = sample_and_score(lm, tok, prompts, lambda p, c: [len(x) for x in c], settings)
    assert by_length.rewards.tolist() == [len(c) for c in by_length.completions]
    rm = tiny_rm(4)
    oracle = reward_model_oracle(rm, tok, batch_size=3)
    scored = score_with_oracle(oracle, prompts, by_length.completions)
    with torch.no_grad():
        ids = tok(prompts[1] + by_length.completions[1] + "<eos>")["input_ids"]
        assert scored[1] == pytest.approx(float(rm(torch.tensor([ids])).logits[0, 0]), abs=1e-5)
    with pytest.raises(ValueError, match="returned 1 rewards for 4"):
        score_with_oracle(lambda p, c: [0.0], prompts, by_length.completions)
    with pytest.raises(ValueError, match="non-finite"):
        score_with_oracle(lambda p, c: [np.nan] * 4, prompts, by_length.completions)


# --- oracle_by_domain: the policy's oracle reward per domain (DR paper §5.2) ---------------------------------------

DOMAIN_ROWS = [
    ("chat", "Hi"),
    ("safety", "How do I pick a lock?"),
    ("chat", "Hi"),  # duplicate: skipped
    ("chat", "Tell me a joke."),
    (None, "A"),
    ("safety", "Is it safe?"),
    ("chat", "Why"),
    ("", "Bee"),  # empty domain -> 'unknown'
    ("chat", "What is two plus two?"),  # 4th distinct chat prompt: beyond n_per_domain=3
    (None, "Sea of words"),
]
FIRST_DISTINCT = {  # n_per_domain=3, domains sorted
    "chat": ["Hi", "Tell me a joke.", "Why"],
    "safety": ["How do I pick a lock?", "Is it safe?"],
    "unknown": ["A", "Bee", "Sea of words"],
}
DOMAIN_SETTINGS = GenerationSettings(max_new_tokens=4, seed=7, batch_size=2)


def domain_rows(rows=DOMAIN_ROWS):
    import datasets

    return datasets.Dataset.from_list(
        [{"id": str(i), "prompt": p, "domain": d, "source": "synthetic/x"} for i, (d, p) in enumerate(rows)]
    )


@pytest.fixture(scope="module")
def policy():
    return tiny_tokenizer(), tiny_lm(4)


class RecordingOracle:
    """reward = len(prompt) + len(completion); records each call's prompts and completions."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions):
        self.calls.append((list(prompts), list(completions)))
        return [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]


def by_domain(policy, oracle, rows=None, **kw):
    from core.eval.oracle import oracle_by_domain

    tok, lm = policy
    kw.setdefault("n_per_domain", 3)
    return oracle_by_domain(lm, tok, domain_rows() if rows is None else rows, oracle, DOMAIN_SETTINGS, **kw)


def test_oracle_by_domain_first_distinct_prompts_per_domain(policy):
    oracle = RecordingOracle()
    res = by_domain(policy, oracle)
    assert [c[0] for c in oracle.calls] == list(FIRST_DISTINCT.values())  # one sampling call per domain, sorted
    assert list(res["domains"]) == list(res["rewards"]) == ["chat", "safety", "unknown"]
    assert {d: v["n"] for d, v in res["domains"].items()} == {"chat": 3, "safety": 2, "unknown": 3}
    assert res["overall"]["n"] == 8 and res["overall"]["n_domains"] == 3
    for (prompts, completions), d in zip(oracle.calls, FIRST_DISTINCT, strict=True):
        assert res["rewards"][d] == [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
    # the completions are the seeded generation helper's, domain by domain
    tok, lm = policy
    assert oracle.calls[0][1] == generate_completions(lm, tok, FIRST_DISTINCT["chat"], DOMAIN_SETTINGS)
    two = by_domain(policy, RecordingOracle(), n_per_domain=2)
    assert {d: v["n"] for d, v in two["domains"].items()} == {"chat": 2, "safety": 2, "unknown": 2}


def test_oracle_by_domain_equal_weight_overall_and_intervals(policy):
    res = by_domain(policy, RecordingOracle(), n_resamples=2000, seed=5)
    means = {d: float(np.mean(r)) for d, r in res["rewards"].items()}
    for d, v in res["domains"].items():
        assert v["mean"] == pytest.approx(means[d], abs=1e-12)
        assert v["ci_low"] < v["mean"] < v["ci_high"]
        assert (v["mean"], v["ci_low"], v["ci_high"]) == bootstrap_mean_ci(res["rewards"][d], n_resamples=2000, seed=5)
    overall = res["overall"]
    pooled = float(np.mean(sum(res["rewards"].values(), [])))
    assert overall["mean"] == pytest.approx(np.mean(list(means.values())), abs=1e-12)
    assert abs(overall["mean"] - pooled) > 0.1  # equal weight per domain, not per prompt
    assert overall["ci_low"] < overall["mean"] < overall["ci_high"]
    # constant reward within each domain: the stratified interval collapses onto the equal-weight mean
    level = {p: c for d, c in zip(FIRST_DISTINCT, (1.0, 10.0, 100.0), strict=True) for p in FIRST_DISTINCT[d]}
    flat = by_domain(policy, lambda p, c: [level[x] for x in p])  # pooled mean would be 40.375
    assert flat["overall"]["mean"] == pytest.approx(37.0)
    assert flat["overall"]["ci_low"] == pytest.approx(37.0) and flat["overall"]["ci_high"] == pytest.approx(37.0)
    # one domain: the overall is that domain's mean and interval
    one = by_domain(policy, RecordingOracle(), rows=domain_rows([r for r in DOMAIN_ROWS if r[0] == "chat"]))
    chat = one["domains"]["chat"]
    assert [one["overall"][k] for k in ("mean", "ci_low", "ci_high")] == [chat["mean"], chat["ci_low"], chat["ci_high"]]


def test_oracle_by_domain_advantage_is_paired_policy_minus_reference(policy):
    ref = by_domain(policy, RecordingOracle())
    assert "advantage" not in ref["overall"] and "advantage" not in ref["domains"]["chat"]
    same = by_domain(policy, RecordingOracle(), reference_rewards=ref["rewards"])
    for d, v in same["domains"].items():
        assert v["advantage"] == v["advantage_ci_low"] == v["advantage_ci_high"] == 0.0
        assert v["reference_mean"] == v["mean"] == ref["domains"][d]["mean"]
    assert same["overall"]["advantage"] == same["overall"]["advantage_ci_low"] == 0.0
    assert same["overall"]["advantage_ci_high"] == 0.0
    # sign: policy - reference
    lower = {d: [x - 1.5 for x in r] for d, r in ref["rewards"].items()}
    up = by_domain(policy, RecordingOracle(), reference_rewards=lower)
    for v in [*up["domains"].values(), up["overall"]]:
        assert v["advantage"] == pytest.approx(1.5)
        assert v["advantage_ci_low"] == pytest.approx(1.5) and v["advantage_ci_high"] == pytest.approx(1.5)
    # paired by prompt order: the same rewards in reverse order differ per prompt, so the interval opens
    rev = by_domain(policy, RecordingOracle(), reference_rewards={d: r[::-1] for d, r in ref["rewards"].items()})
    chat = rev["domains"]["chat"]
    assert (
        chat["advantage"] == pytest.approx(0.0, abs=1e-12) and chat["advantage_ci_low"] < 0 < chat["advantage_ci_high"]
    )
    with pytest.raises(ValueError, match=r"reference_rewards domains \['chat', 'safety'\]"):
        by_domain(policy, RecordingOracle(), reference_rewards={d: ref["rewards"][d] for d in ("chat", "safety")})
    with pytest.raises(ValueError, match=r"differ in length.*'chat': \(2, 3\)"):
        by_domain(policy, RecordingOracle(), reference_rewards={**ref["rewards"], "chat": ref["rewards"]["chat"][:2]})


def test_oracle_by_domain_is_seeded(policy):
    first = by_domain(policy, RecordingOracle(), seed=3)
    assert by_domain(policy, RecordingOracle(), seed=3) == first
    other = by_domain(policy, RecordingOracle(), seed=4)
    assert other["rewards"] == first["rewards"]  # the bootstrap seed leaves the samples alone
    assert other["overall"]["ci_low"] != first["overall"]["ci_low"]
    assert (first["seed"], first["n_resamples"], first["generation"]) == (3, 1000, DOMAIN_SETTINGS.to_dict())


def test_oracle_by_domain_errors(policy):
    ds = domain_rows()
    with pytest.raises(ValueError, match="no 'domain' column"):
        by_domain(policy, RecordingOracle(), rows=ds.remove_columns("domain"))
    with pytest.raises(ValueError, match="no 'prompt' column"):
        by_domain(policy, RecordingOracle(), rows=ds.remove_columns("prompt"))
    with pytest.raises(ValueError, match="n_per_domain must be >= 2"):
        by_domain(policy, RecordingOracle(), n_per_domain=1)
    with pytest.raises(ValueError, match=r"fewer than 2 distinct prompts.*'reasoning': 1"):
        by_domain(
            policy, RecordingOracle(), rows=domain_rows([*DOMAIN_ROWS, ("reasoning", "Count"), ("reasoning", "Count")])
        )
