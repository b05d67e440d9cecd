"""Figure B.1 probes: likelihoods of (dis)preferred completions and sample KL to the reference."""

from __future__ import annotations

import copy
import json

import datasets
import pytest
import torch
from eval_tiny import ROWS, tiny_lm, tiny_tokenizer
from transformers import Trainer, TrainingArguments, default_data_collator

from core.eval.generation import GenerationSettings
from core.eval.pairwise import policy_pairwise
from core.eval.probes import LikelihoodProbeCallback, build_probe_set, compute_probes

torch.set_num_threads(1)
SAMPLING = GenerationSettings(max_new_tokens=6, seed=0, batch_size=4)


@pytest.fixture(scope="module")
def setup():
    tok, ref = tiny_tokenizer(), tiny_lm(0)
    return tok, ref, build_probe_set(ref, tok, ROWS[:4], sample_settings=SAMPLING, batch_size=3)


def test_probes_of_the_reference_itself(setup):
    tok, ref, probes = setup
    values = compute_probes(copy.deepcopy(ref), probes)
    assert values["kl_loss_ref"] == 0.0
    assert values["preferred_logratio"] == 0.0 and values["dispreferred_logratio"] == 0.0
    assert values["implicit_accuracy"] == 0.0  # all ties: strict > counts them wrong
    lik = policy_pairwise(ref, tok, ROWS[:4], mode="likelihood")
    # other batches (probe set in threes, policy_pairwise in eights): equal up to float round-off
    assert values["preferred_log_likelihood"] == pytest.approx(lik.score_chosen.mean(), abs=1e-5)
    assert values["dispreferred_log_likelihood"] == pytest.approx(lik.score_rejected.mean(), abs=1e-5)
    assert len(probes.ref_samples) >= 1


def test_kl_estimate_uses_given_reference_samples(setup):
    tok, ref, _ = setup
    samples = [("Hi", "abc"), ("Yo", "zz")]
    probes = build_probe_set(ref, tok, ROWS[:2], ref_samples=samples)
    other = tiny_lm(9)
    got = compute_probes(other, probes)["kl_loss_ref"]
    ref_lp = policy_pairwise(
        ref, tok, [{"prompt": p, "chosen": c, "rejected": c} for p, c in samples], mode="likelihood"
    ).score_chosen
    pol_lp = policy_pairwise(
        other, tok, [{"prompt": p, "chosen": c, "rejected": c} for p, c in samples], mode="likelihood"
    ).score_chosen
    assert got == pytest.approx(float((ref_lp - pol_lp).mean()), abs=1e-9)


def test_callback_logs_during_training(setup, tmp_path):
    tok, ref, probes = setup
    policy = copy.deepcopy(ref).train()
    ids = tok("hello world, this is a probe")["input_ids"]
    ds = datasets.Dataset.from_list([{"input_ids": ids, "labels": ids} for _ in range(4)])
    logged = []
    cb = LikelihoodProbeCallback(
        probes, every_n_steps=1, log_fn=lambda m, s: logged.append((s, m)), jsonl_path=tmp_path / "probes.jsonl"
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=5e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        logging_strategy="no",
    )
    trainer = Trainer(model=policy, args=args, train_dataset=ds, data_collator=default_data_collator, callbacks=[cb])
    trainer.train()
    assert [h["step"] for h in cb.history] == [0, 1, 2]
    assert cb.history[0]["probe/kl_loss_ref"] == 0.0
    assert cb.history[-1]["probe/kl_loss_ref"] != 0.0  # the policy moved away from the reference
    assert [s for s, _ in logged] == [0, 1, 2]
    lines = (tmp_path / "probes.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == cb.history
    assert sum("probe/preferred_log_likelihood" in r for r in trainer.state.log_history) == 3
    assert policy.training  # the probe restored train mode
    with pytest.raises(ValueError, match="every_n_steps"):
        LikelihoodProbeCallback(probes, every_n_steps=0)
