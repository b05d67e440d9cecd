"""Length-bucketed forward passes (core.trainers.bucketing): the same outputs and gradients as the
plain forward, every other call untouched, and a model that saves, reloads and copies as before."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from conftest import make_tiny_llama, make_tiny_tokenizer

from core.trainers.bucketing import bucket_forward, length_buckets


def _batch(lengths: list[int], vocab: int, width: int | None = None, left: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        cols = slice(width - n, width) if left else slice(0, n)
        ids[i, cols] = torch.randint(4, vocab, (n,), generator=g)
        mask[i, cols] = 1
    return ids, mask


LENGTHS = [3, 17, 9, 17, 5, 12, 2, 8, 15, 6]


def _pair(reward: bool, buckets: int = 4):
    tok = make_tiny_tokenizer()
    plain = make_tiny_llama(tok, seed=0, reward=reward)
    bucketed = bucket_forward(copy.deepcopy(plain), buckets)
    return tok, plain, bucketed


def test_reward_logits_and_gradients_match_the_plain_forward():
    tok, plain, bucketed = _pair(reward=True)
    ids, mask = _batch(LENGTHS, len(tok), width=20)
    a = plain(input_ids=ids, attention_mask=mask, use_cache=False).logits
    b = bucketed(input_ids=ids, attention_mask=mask, use_cache=False).logits
    assert b.shape == a.shape == (len(LENGTHS), 1)
    assert torch.allclose(a, b, atol=1e-5)
    (a**2).sum().backward()
    (b**2).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), bucketed.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_causal_logits_match_on_real_tokens():
    tok, plain, bucketed = _pair(reward=False, buckets=3)
    ids, mask = _batch(LENGTHS, len(tok))
    a = plain(ids, mask).logits  # positional arguments too
    b = bucketed(ids, mask).logits
    assert b.shape == a.shape
    real = mask.bool()
    assert torch.allclose(a[real], b[real], atol=1e-5)
    shortest = mask.sum(1) <= 6  # the first of 3 chunks (lengths 2, 3, 5, 6): nothing computed past width 6
    assert (b[shortest][:, 6:] == 0).all() and not (a[shortest][:, 6:] == 0).all()


def test_other_calls_go_to_the_plain_forward_unchanged():
    tok, plain, bucketed = _pair(reward=False)
    ids, mask = _batch(LENGTHS, len(tok), left=True)  # left padding: positions would move
    assert torch.equal(
        plain(input_ids=ids, attention_mask=mask).logits, bucketed(input_ids=ids, attention_mask=mask).logits
    )
    ids, mask = _batch(LENGTHS, len(tok))
    hidden = bucketed(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert hidden.hidden_states is not None and torch.equal(
        hidden.logits, plain(input_ids=ids, attention_mask=mask, output_hidden_states=True).logits
    )
    prompt, prompt_mask = _batch([4, 4], len(tok))
    kwargs = dict(attention_mask=prompt_mask, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert torch.equal(plain.generate(prompt, **kwargs), bucketed.generate(prompt, **kwargs))


def test_bucketed_model_saves_reloads_and_copies_as_the_plain_class(tmp_path):
    from transformers import LlamaForSequenceClassification

    tok, plain, bucketed = _pair(reward=True)
    assert type(bucketed).__name__ == "LlamaForSequenceClassification" and isinstance(bucketed, type(plain))
    assert inspect.signature(bucketed.forward) == inspect.signature(plain.forward)  # Trainer reads it
    assert length_buckets(bucketed) == 4 and length_buckets(plain) == 1
    bucketed.save_pretrained(tmp_path)
    reloaded = LlamaForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config.architectures == ["LlamaForSequenceClassification"]
    assert length_buckets(reloaded) == 1
    twin = copy.deepcopy(bucketed)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(1.0)
    ids, mask = _batch(LENGTHS, len(tok))
    assert length_buckets(twin) == 4
    assert not torch.allclose(
        twin(input_ids=ids, attention_mask=mask).logits, bucketed(input_ids=ids, attention_mask=mask).logits
    )
    assert bucket_forward(plain, 1) is plain and length_buckets(plain) == 1
    with pytest.raises(ValueError, match="length_buckets"):
        bucket_forward(plain, 0)


def test_training_jobs_bucket_their_models_as_the_config_says(tmp_path):
    """resources.train.length_buckets -> the job's launch settings -> the trainer's model and reference."""
    import yaml
    from trainer_helpers import dataset, tokenizer

    from core.jobs.job import Job
    from core.jobs.train import _trainer
    from core.plan.workflow import Pipeline
    from core.tracking import RunLogger
    from core.trainers.dpo import DRDPOConfig, DRDPOTrainer

    with open("config.yaml", encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    assert Pipeline(cfg).job("train")["length_buckets"] == cfg["resources"]["train"]["length_buckets"] == 4
    cfg["resources"]["train"].pop("length_buckets")
    assert Pipeline(cfg).job("train")["length_buckets"] == 1  # the schema's default: off
    tok = tokenizer()
    policy, ref = make_tiny_llama(tok, seed=0), make_tiny_llama(tok, seed=0)
    params = {"seed": 0, "train": {"max_steps": 1, "per_device_train_batch_size": 4}, "job": {"length_buckets": 3}}
    job = Job(rule="r", input={}, output={}, params=params, wildcards={})
    fields = {"loss_type": "dpo", "beta": 0.1, "divergence": "none", "rho": 0.0}
    trainer = _trainer(job, (DRDPOTrainer, DRDPOConfig), str(tmp_path / "m"), dataset(8), None, RunLogger(),
                       model=policy, ref_model=ref, processing_class=tok, fields=fields)  # fmt: skip
    assert length_buckets(trainer.model) == 3 and length_buckets(trainer.ref_model) == 3
