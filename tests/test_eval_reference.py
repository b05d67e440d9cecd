"""Reference rows: the longer-response rule, the fair coin, the oracle's ceiling, in the layout
both reward-model and policy tables read."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from core.eval.benchmarks import evaluate_reference, spread
from core.eval.reference import reference_correct, response_text


def pairs():
    return datasets.Dataset.from_dict({
        "prompt": ["p1", "p2", "p3", "p4"],
        "chosen": ["a long answer", "short", "xx", "same"],
        "rejected": ["short", "a long answer", "x", "same"],
        "subset": ["s1", "s1", "s2", "s2"],
    })  # fmt: skip


def test_longer_rule_counts_characters_of_the_last_message_and_applies_the_tie_rule():
    assert response_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "ans"}]) == "ans"
    assert reference_correct(pairs(), "longer", "wrong").tolist() == [1.0, 0.0, 1.0, 0.0]
    assert reference_correct(pairs(), "longer", "half").tolist() == [1.0, 0.0, 1.0, 0.5]
    msgs = datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": "q"}]] * 2,
        "chosen": [[{"role": "assistant", "content": "xx"}], [{"role": "assistant", "content": "x"}]],
        "rejected": [[{"role": "assistant", "content": "x"}], [{"role": "assistant", "content": "xxx"}]],
    })  # fmt: skip
    assert reference_correct(msgs, "longer").tolist() == [1.0, 0.0]


def test_random_is_the_expected_credit_and_oracle_scores_both_sides():
    assert reference_correct(pairs(), "random").tolist() == [0.5] * 4
    oracle = lambda prompts, responses: [len(response_text(r)) % 3 for r in responses]  # noqa: E731
    assert reference_correct(pairs(), "oracle", oracle=oracle).tolist() == [0.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="needs the oracle"):
        reference_correct(pairs(), "oracle")
    with pytest.raises(ValueError, match="unknown reference rule"):
        reference_correct(pairs(), "shortest")


def test_reference_metrics_read_like_a_reward_model_and_like_a_policy():
    metrics, n = evaluate_reference(pairs(), {"kind": "pairs", "subset_map": {}}, "longer", "wrong")
    assert n == 4 and metrics["accuracy"] == 0.5
    assert metrics["likelihood"]["accuracy"] == metrics["implicit"]["accuracy"] == 0.5
    assert metrics["scores"]["subsets"] == {"s1": 0.5, "s2": 0.5}


def test_spread_flags_a_constant_model():
    class Res:
        score_chosen = np.full(5, 0.14)
        score_rejected = np.full(5, 0.14) + 1e-5

    flat = spread(Res(), 1e-3)
    assert flat["degenerate"] and flat["score_std"] < 1e-4
    Res.score_rejected = np.linspace(-1, 1, 5)
    assert not spread(Res(), 1e-3)["degenerate"]
