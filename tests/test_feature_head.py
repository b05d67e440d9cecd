"""Reward-model heads trained on cached encoder states: the saved folder scores raw text exactly as the
cached states predict, BTL learns a separable signal, DR reweights, and prompts never straddle splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import load_preferences, rows_to_dataset, split_by_prompt
from core.eval.encoder_states import encoder_states
from core.eval.encoding import default_truncation
from core.trainers.feature_head import HeadConfig, head_scores, save_head_model, train_head
from tests.conftest import TINY_WORDS, make_tiny_tokenizer

GOOD = "yes sure here is my good answer thanks"
BAD = "no sorry cannot help bad"


def _tiny_bert(tok, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    return BertForSequenceClassification(cfg)


def _encoder_tokenizer():
    tok = make_tiny_tokenizer()
    tok.cls_token = "<s>"
    tok.chat_template = None
    return tok


def _rows(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(TINY_WORDS, size=4))
        rows.append({"id": f"r{i}", "prompt": f"{q} ?", "chosen": GOOD, "rejected": BAD, "source": f"s{i % 2}"})
    return rows


def test_saved_head_model_scores_raw_text_as_the_cached_states(tmp_path: Path):
    tok = _encoder_tokenizer()
    assert default_truncation(tok) == "encoder" and default_truncation(make_tiny_tokenizer()) == "keep_end"
    model = _tiny_bert(tok).eval()
    ds = rows_to_dataset(_rows(24))
    chosen = encoder_states(model, tok, ds["prompt"], ds["chosen"], max_length=32)
    rejected = encoder_states(model, tok, ds["prompt"], ds["rejected"], max_length=32)
    encoder_before = {k: v.clone() for k, v in model.bert.encoder.state_dict().items()}
    res = train_head(model, chosen["cls"], rejected["cls"], HeadConfig(steps=60, batch_size=8, learning_rate=1e-2), 0)
    assert np.mean(res.losses[-10:]) < np.mean(res.losses[:10])  # it learned
    assert all(torch.equal(v, model.bert.encoder.state_dict()[k]) for k, v in encoder_before.items())
    with torch.no_grad():
        cached = head_scores(model, torch.from_numpy(chosen["cls"])).numpy()
    save_head_model(model, tok, tmp_path / "rm")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(24)))
    from core.eval.score import pair_scores

    raw_chosen, raw_rejected = pair_scores([str(tmp_path / "rm")], load_preferences(data, "normalised"), max_length=32)
    np.testing.assert_allclose(raw_chosen, cached, rtol=1e-4, atol=1e-5)
    assert (raw_chosen > raw_rejected).all()


def test_dr_head_puts_more_weight_on_hard_pairs_than_btl():
    rng = np.random.default_rng(0)
    d, n = 8, 200
    w_true = rng.normal(size=d)
    c, r = rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)
    swap = (c - r) @ w_true < 0
    c[swap], r[swap] = r[swap].copy(), c[swap].copy()
    tok = make_tiny_tokenizer()
    results = {}
    for div, rho in (("none", 0.0), ("tv", 0.4)):
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(0)
        model = BertForSequenceClassification(
            BertConfig(
                vocab_size=len(tok),
                hidden_size=d,
                num_hidden_layers=1,
                num_attention_heads=1,
                intermediate_size=8,
                num_labels=1,
            )  # fmt: skip
        )
        results[div] = train_head(model, c, r, HeadConfig(steps=50, batch_size=32, divergence=div, rho=rho), 0)
    # the worst-case weighted loss is never below the uniform one on the same batch: the first step agrees
    assert results["tv"].losses[0] > results["none"].losses[0]
    with pytest.raises(ValueError, match="equal"):
        train_head(model, c, r[:10], HeadConfig(steps=1), 0)


def test_split_by_prompt_keeps_each_prompt_in_one_split():
    rows = []
    for p in range(40):
        for k in range(3):
            rows.append({"id": f"{p}-{k}", "prompt": f"prompt {p}", "chosen": f"a{k}", "rejected": "b",
                         "source": "x" if p < 30 else "y"})  # fmt: skip
    ds = rows_to_dataset(rows)
    parts = split_by_prompt(ds, 0.1, 0.2, seed=3)
    seen = [set(parts[name]["prompt"]) for name in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sum(len(parts[n]) for n in parts) == len(ds)
    # stratified: 30 prompts of x -> 3 val, 6 test; 10 of y -> 1 val, 2 test
    assert len(seen[1]) == 4 and len(seen[2]) == 8
    assert split_by_prompt(ds, 0.1, 0.2, seed=3)["val"]["id"] == parts["val"]["id"]
    assert split_by_prompt(ds, 0.1, 0.2, seed=4)["val"]["id"] != parts["val"]["id"]


def test_encoder_truncation_keeps_the_first_token_and_both_starts():
    from core.eval.encoding import _truncate

    ids = list(range(100))  # token 0 is [CLS], the prompt is 1..59, the response 60..99
    long_response = _truncate(ids, 60, 21, "encoder")
    assert long_response.ids == (0, *range(1, 11), *range(60, 70)) and long_response.start == 11
    assert long_response.n_response == 10 and long_response.truncated
    short_response = _truncate(list(range(30)), 25, 21, "encoder")  # the prompt gives way to the response
    assert short_response.ids == (0, *range(1, 16), *range(25, 30)) and short_response.start == 16
    assert _truncate(ids, 60, 200, "encoder").ids == tuple(ids)
