"""DR-DPO family (core.trainers.dpo) on a tiny random Llama: trl parity, DR, distillation, e-DPO."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trainer_helpers import (
    assert_params_equal,
    dataset,
    dpo_trainer,
    dr_and_trl_eval_losses,
    logged,
    max_param_diff,
    params,
    with_domain_share,
)
from transformers import TrainerCallback
from trl import DPOTrainer

from core.losses import ensemble_distillation_loss
from core.trainers.dpo import DRDPOConfig, DRDPOTrainer, resolve_target_columns
from core.trainers.guards import NonFiniteError
from core.trainers.robust import solve_step_weights

torch.set_num_threads(1)
CLEAN = dict(minority=0.0, ensemble=3)


def _batch(trainer, rows=range(8)):
    return trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in rows]))


@pytest.mark.parametrize(
    "loss_type,extra",
    [
        ("dpo", {}),
        ("ipo", {}),
        ("ddpo", {}),
        ("pdpo", {"gamma": 0.05}),
        ("dpdpo", {"gamma_schedule": "linear"}),
        ("edpo", {}),
        (
            "pdpo",
            {
                "forward_kl_estimator": "ref_samples",
                "forward_kl_num_samples": 2,
                "forward_kl_max_new_tokens": 4,
            },
        ),
    ],
)
@pytest.mark.parametrize("dr", [False, True])
def test_loss_falls_for_every_loss_type(tmp_path, loss_type, extra, dr):
    robust = {"divergence": "tv", "rho": 0.3} if dr else {}
    trainer = dpo_trainer(tmp_path, data=dataset(**CLEAN), loss_type=loss_type, max_steps=10, **robust, **extra)
    trainer.train()
    losses = logged(trainer, "loss")
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, losses
    if dr:  # DR weights really reweight every loss type (step 1: policy = reference, all losses tie)
        assert all(r["n"] == 8 and r["max_weight"] > 1 / 8 for r in trainer.robust_history[1:])
        assert all(r["robust_loss"] >= r["mean_loss"] - 1e-12 for r in trainer.robust_history)


@pytest.mark.parametrize("loss_type", ["dpo", "ipo"])
def test_rho_zero_is_trl_bit_for_bit(tmp_path, loss_type):
    kwargs = dict(
        loss_type=loss_type,
        max_steps=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    ours = dpo_trainer(tmp_path / "dr", divergence="chi2", rho=0.0, **kwargs)
    ours.train()
    theirs = dpo_trainer(tmp_path / "trl", trainer_cls=DPOTrainer, **kwargs)
    theirs.train()
    assert_params_equal(params(ours.model), params(theirs.model))
    assert logged(ours, "loss") == logged(theirs, "loss")


@pytest.mark.parametrize("loss_type", ["dpo", "ipo"])
def test_core_losses_mean_equals_trl_loss_on_a_batch(tmp_path, loss_type):
    # cvar with alpha = 1: the DR code path (core.losses per-example losses) with uniform weights
    ours = dpo_trainer(tmp_path / "dr", loss_type=loss_type, divergence="cvar", rho=1.0)
    theirs = dpo_trainer(tmp_path / "trl", trainer_cls=DPOTrainer, loss_type=loss_type)
    batch = _batch(theirs)
    ours.model.eval()
    theirs.model.eval()
    with torch.no_grad():
        reference = theirs.compute_loss(theirs.model, dict(batch))
        per_example = ours._terms(ours.model, dict(batch)).main
        ours_loss = ours.compute_loss(ours.model, dict(batch))
    assert per_example.shape == (8,)
    torch.testing.assert_close(per_example.mean(), reference, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(ours_loss, reference, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("loss_type", ["dpo", "ipo"])
def test_dr_path_with_uniform_weights_trains_like_trl(tmp_path, loss_type):
    kwargs = dict(
        loss_type=loss_type,
        max_steps=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        optim="sgd",
        learning_rate=0.05,
    )
    ours = dpo_trainer(tmp_path / "dr", divergence="cvar", rho=1.0, **kwargs)
    ours.train()
    theirs = dpo_trainer(tmp_path / "trl", trainer_cls=DPOTrainer, **kwargs)
    theirs.train()
    assert max_param_diff(params(ours.model), params(theirs.model)) < 1e-6


def test_accumulated_minibatch_equals_one_big_batch_and_reference_runs_once(tmp_path):
    common = dict(loss_type="dpo", divergence="tv", rho=0.3, max_steps=2, optim="sgd", learning_rate=0.05)
    accumulated = dpo_trainer(tmp_path / "acc", per_device_train_batch_size=2, gradient_accumulation_steps=4, **common)
    calls = []
    accumulated.ref_model.register_forward_hook(lambda *args: calls.append(1))
    accumulated.train()
    assert len(calls) == 2 * 4  # the pre-pass caches reference log-probs: one reference forward per micro-batch
    big = dpo_trainer(tmp_path / "big", per_device_train_batch_size=8, **common)
    big.train()
    assert [r["n"] for r in accumulated.robust_history] == [8, 8]
    np.testing.assert_allclose(accumulated.last_robust_step.weights, big.last_robust_step.weights, atol=1e-9)
    assert max_param_diff(params(accumulated.model), params(big.model)) < 1e-6


@pytest.mark.parametrize("loss_type", ["dpo", "ipo"])
def test_planted_minority_domain_gets_more_weight(tmp_path, loss_type):
    trainer = dpo_trainer(
        tmp_path, data=dataset(n=32, minority=0.25), trainer_cls=with_domain_share(DRDPOTrainer),
        loss_type=loss_type, divergence="tv", rho=0.3, max_steps=10,
    )  # fmt: skip
    trainer.train()
    weight_share, frequency = np.mean(trainer.domain_share, axis=0)
    assert frequency > 0 and weight_share > frequency + 0.05, trainer.domain_share


def test_edpo_selects_the_minimising_member_over_the_minibatch(tmp_path):
    trainer = dpo_trainer(tmp_path, data=dataset(**CLEAN), loss_type="edpo", max_steps=3, gamma=0.0)
    batch = _batch(trainer)
    assert batch["target_chosen"].shape == (8, 3)
    with torch.no_grad():
        terms = trainer._terms(trainer.model, dict(batch))
        _, member, selected = solve_step_weights(terms.main.double().numpy(), "none", 0.0)
        expected, index = ensemble_distillation_loss(
            terms.chosen_logratios,
            terms.rejected_logratios,
            batch["target_chosen"],
            batch["target_rejected"],
            trainer.beta,
        )
    assert member == int(index)
    np.testing.assert_allclose(selected, expected.double().numpy(), rtol=1e-6)
    trainer.train()
    records = trainer.robust_history
    assert [r["member"] for r in records] == [0, 0, 0]  # member 0 has the smallest target margins
    assert all(sum(r["member_counts"]) == 8 for r in records)
    assert logged(trainer, "edpo/member") == [0.0, 0.0, 0.0]


def test_robust_edpo_member_is_min_over_members_of_the_robust_loss():
    # member 0 has the smaller mean loss, member 1 the smaller worst-case (TV, rho = 0.5) loss
    losses = np.array([[0.0, 1.0], [0.0, 1.0], [3.0, 1.4]])
    assert solve_step_weights(losses, "none", 0.0)[1] == 0
    weights, member, selected = solve_step_weights(losses, "tv", 0.5)
    assert member == 1
    np.testing.assert_allclose(weights, [1 / 12, 1 / 12, 5 / 6], atol=1e-12)  # ties share mass
    np.testing.assert_array_equal(selected, losses[:, 1])


def test_edpo_member_changes_with_the_targets(tmp_path):
    data = dataset(**CLEAN)
    # reverse the members' strengths: now member 2 has the smallest margins
    swap = {"target_chosen_0": "target_chosen_2", "target_rejected_0": "target_rejected_2"}
    swap.update({v: k for k, v in swap.items()})
    data = data.map(lambda row: {new: row[old] for new, old in swap.items()})
    trainer = dpo_trainer(tmp_path, data=data, loss_type="edpo", max_steps=2, gamma=0.0)
    trainer.train()
    assert [r["member"] for r in trainer.robust_history] == [2, 2]


def test_edpo_min_over_accumulated_minibatch(tmp_path):
    common = dict(loss_type="edpo", max_steps=2, optim="sgd", learning_rate=0.05)
    accumulated = dpo_trainer(
        tmp_path / "acc",
        data=dataset(**CLEAN),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        **common,
    )
    accumulated.train()
    big = dpo_trainer(tmp_path / "big", data=dataset(**CLEAN), per_device_train_batch_size=8, **common)
    big.train()
    assert [r["n"] for r in accumulated.robust_history] == [8, 8]
    assert [r["member_counts"] for r in accumulated.robust_history] == [r["member_counts"] for r in big.robust_history]
    assert max_param_diff(params(accumulated.model), params(big.model)) < 1e-6


def test_gamma_schedules(tmp_path):
    linear = dpo_trainer(
        tmp_path / "lin",
        loss_type="pdpo",
        gamma_schedule="linear",
        gamma_start=1e-4,
        gamma_end=1e-2,
        max_steps=5,
    )
    linear.train()
    np.testing.assert_allclose(logged(linear, "gamma"), np.linspace(1e-4, 1e-2, 5), rtol=1e-9)
    constant = dpo_trainer(tmp_path / "const", loss_type="dpdpo", gamma=0.3, max_steps=2)
    constant.train()
    assert logged(constant, "gamma") == [0.3, 0.3]


def test_forward_kl_dataset_estimator_is_mean_nll_of_the_pair(tmp_path):
    trainer = dpo_trainer(tmp_path, loss_type="pdpo", gamma=1.0)
    batch = _batch(trainer)
    with torch.no_grad():
        terms = trainer._terms(trainer.model, dict(batch))
        kl = trainer._forward_kl(terms)
    torch.testing.assert_close(kl, -0.5 * (terms.chosen_logps + terms.rejected_logps))


def test_reference_samples_follow_the_prompt(tmp_path):
    trainer = dpo_trainer(
        tmp_path,
        loss_type="pdpo",
        forward_kl_estimator="ref_samples",
        forward_kl_num_samples=3,
        forward_kl_max_new_tokens=5,
    )
    batch = _batch(trainer, rows=range(4))
    torch.manual_seed(0)
    attention, ids, completion = trainer._sample_reference(batch)
    assert ids.shape[0] == 12 and attention.shape == ids.shape == completion.shape
    prompt_lengths = (batch["attention_mask"][:4].bool() & ~batch["completion_mask"][:4].bool()).sum(dim=1)
    for row in range(12):
        n_prompt = int(prompt_lengths[row // 3])
        assert torch.equal(ids[row, :n_prompt], batch["input_ids"][row // 3, :n_prompt])  # flushed left
        assert completion[row, :n_prompt].sum() == 0 and 1 <= completion[row].sum() <= 5
        assert attention[row].sum() == n_prompt + completion[row].sum()
    torch.manual_seed(0)
    again = trainer._sample_reference(batch)
    assert torch.equal(again[1], ids)  # seeded sampling is reproducible


def test_reference_samples_scored_in_the_same_forward_as_the_pair(tmp_path):
    trainer = dpo_trainer(tmp_path, loss_type="pdpo", forward_kl_estimator="ref_samples", forward_kl_num_samples=2)
    batch = _batch(trainer, rows=range(4))
    torch.manual_seed(0)
    attention, ids, completion = trainer._sample_reference(batch)
    with torch.no_grad():
        joint = trainer._terms(trainer.model, dict(batch), samples=(ids, attention, completion))
        alone = trainer._terms(trainer.model, dict(batch))
        logits = trainer.model(input_ids=ids, attention_mask=attention).logits
    torch.testing.assert_close(joint.chosen_logps, alone.chosen_logps, atol=1e-5, rtol=1e-5)
    assert joint.outputs.logits.shape == alone.outputs.logits.shape
    per_token = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    expected = (per_token * completion[:, 1:]).sum(dim=1)
    torch.testing.assert_close(joint.sample_logps, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trainer._forward_kl(joint), -expected.view(4, 2).mean(dim=1), atol=1e-5, rtol=1e-5)


def test_ref_samples_need_a_reference_model(tmp_path):
    with pytest.raises(ValueError, match="ref_samples"):
        dpo_trainer(
            tmp_path,
            loss_type="pdpo",
            forward_kl_estimator="ref_samples",
            precompute_ref_log_probs=True,
            trainer_cls=_NoRef,
        )


class _NoRef:
    """Builds a DRDPOTrainer without an explicit reference model (precomputed reference log-probs)."""

    def __new__(cls, model, ref_model, args, **kwargs):
        from core.trainers.dpo import DRDPOTrainer

        return DRDPOTrainer(model=model, ref_model=None, args=args, **kwargs)


def test_resume_matches_uninterrupted_run(tmp_path):
    common = dict(
        data=dataset(**CLEAN), loss_type="edpo", divergence="tv", rho=0.3, average_iterates="ema", ema_decay=0.5,
        max_steps=4, save_strategy="steps", save_steps=2, per_device_train_batch_size=4, gradient_accumulation_steps=2,
    )  # fmt: skip
    full = dpo_trainer(tmp_path / "full", **common)
    full.train()
    resumed = dpo_trainer(tmp_path / "resumed", **common)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))
    assert_params_equal(params(resumed.model), params(full.model))
    assert resumed.robust_history == full.robust_history


def test_same_seed_same_weights_with_reference_sampling(tmp_path):
    kwargs = dict(
        loss_type="pdpo",
        forward_kl_estimator="ref_samples",
        forward_kl_max_new_tokens=4,
        max_steps=3,
    )
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        trainer = dpo_trainer(tmp_path / name, seed=seed, data_seed=seed, **kwargs)
        trainer.train()
        runs.append(params(trainer.model))
    assert_params_equal(runs[0], runs[1])
    assert max_param_diff(runs[0], runs[2]) > 0


class _PoisonHead(TrainerCallback):
    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 2:
            with torch.no_grad():
                model.lm_head.weight.fill_(float("nan"))


@pytest.mark.parametrize("robust", [{}, {"divergence": "tv", "rho": 0.3}])
def test_nan_loss_stops_without_checkpoint(tmp_path, robust):
    trainer = dpo_trainer(
        tmp_path,
        loss_type="dpo",
        max_steps=4,
        save_strategy="steps",
        save_steps=1,
        callbacks=[_PoisonHead()],
        **robust,
    )
    with pytest.raises(NonFiniteError, match="non-finite .*step 3"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint-1",
        "checkpoint-2",
    ]


def test_target_columns_resolution_and_errors(tmp_path):
    names = [
        "prompt",
        "chosen",
        "rejected",
        "target_chosen_0",
        "target_rejected_0",
        "target_chosen_1",
        "target_rejected_1",
    ]
    assert resolve_target_columns(names, "edpo", "target_chosen", "target_rejected") == (
        ["target_chosen_0", "target_chosen_1"],
        ["target_rejected_0", "target_rejected_1"],
    )
    assert resolve_target_columns(names, "dpo", "target_chosen", "target_rejected") == ([], [])
    with pytest.raises(ValueError, match="numbered 0..K-1"):
        resolve_target_columns(
            names[:3] + ["target_chosen_0", "target_rejected_0", "target_chosen_2", "target_rejected_2"],
            "edpo",
            "target_chosen",
            "target_rejected",
        )
    with pytest.raises(ValueError, match=r"\['target_chosen', 'target_rejected'\]"):
        dpo_trainer(
            tmp_path,
            data=dataset().remove_columns(["target_chosen", "target_rejected"]),
            loss_type="ddpo",
        )
    bad = dataset().map(
        lambda row, i: {"target_rejected": float("nan") if i == 5 else row["target_rejected"]},
        with_indices=True,
    )
    with pytest.raises(ValueError, match="column 'target_rejected', row 5"):
        dpo_trainer(tmp_path, data=bad, loss_type="dpdpo")


def test_targets_survive_preprocessing(tmp_path):
    data = dataset(**CLEAN)
    trainer = dpo_trainer(tmp_path, data=data, loss_type="edpo")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    expected = torch.tensor([[data[i][f"target_chosen_{k}"] for k in range(3)] for i in range(4)])
    torch.testing.assert_close(batch["target_chosen"], expected)
    loader_batch = next(iter(trainer.get_train_dataloader()))
    assert loader_batch["target_rejected"].shape == (8, 3)


def test_dpo_reaches_trl_as_sigmoid_and_the_config_keeps_its_word(tmp_path):
    trainer = dpo_trainer(tmp_path)  # DRDPOConfig's default loss: "dpo", DR off -> trl's own code path
    assert trainer.args.loss_type == ["dpo"] and trainer.loss_types == ["sigmoid"]


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"loss_type": "hinge", "divergence": "tv", "rho": 0.1}, "loss_type"),
        ({"loss_type": ["dpo", "ddpo"]}, "loss_type"),
        ({"loss_type": "pdpo", "gamma": -1.0}, "gamma"),
        ({"loss_type": "pdpo", "gamma_schedule": "cosine"}, "gamma_schedule"),
        ({"loss_type": "pdpo", "forward_kl_estimator": "policy"}, "forward_kl_estimator"),
        ({"loss_type": "dpo", "divergence": "wasserstein"}, "divergence"),
        ({"loss_type": "sigmoid"}, "'dpo'"),
    ],
)
def test_config_validation(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        DRDPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **overrides)


# ------------------------------------------------------------------ validation loss
def test_dr_dpo_eval_loss_is_the_uniform_mean(tmp_path):
    ours, ours_loss, trl_loss, n_val = dr_and_trl_eval_losses(dpo_trainer, DPOTrainer, tmp_path, max_steps=6)
    assert ours_loss == pytest.approx(trl_loss, abs=1e-6)
    batch = ours._prepare_inputs(ours.data_collator([ours.eval_dataset[i] for i in range(n_val)]))
    ours.model.eval()
    with torch.no_grad():
        losses = ours._terms(ours.model, batch).main
    assert ours_loss == pytest.approx(float(losses.mean()), abs=1e-6)
    assert float(losses.topk(3).values.mean()) > ours_loss + 0.05  # reweighting would have shown
    assert [r["step"] for r in ours.robust_history] == list(range(1, 7))  # evaluation recorded no weights


@pytest.mark.parametrize(
    "loss_type,extra",
    [("ddpo", {}), ("ddpo", {"divergence": "tv", "rho": 0.3}), ("edpo", {"gamma": 0.0}), ("dpdpo", {"gamma": 0.0})],
)
def test_distillation_losses_validate_without_targets(tmp_path, loss_type, extra):
    data = dataset(**CLEAN) if loss_type == "edpo" else dataset()
    val = data.select(range(8))
    pairs = val.select_columns(["prompt", "chosen", "rejected"])
    trainer = dpo_trainer(tmp_path, data=data, eval_data=pairs, loss_type=loss_type, **extra)
    # policy = reference: the DPO loss of a pair is log 2; the distillation loss (targets +-1, member
    # k of e-DPO +-(k+1), the min member 0) is (2 - 0)^2 = 4
    assert trainer.evaluate()["eval_loss"] == pytest.approx(np.log(2.0), abs=1e-6)
    assert trainer.evaluate(eval_dataset=val)["eval_loss"] == pytest.approx(4.0, abs=1e-5)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    del batch["target_chosen"], batch["target_rejected"]
    with pytest.raises(ValueError, match="training batch without target rewards"):
        trainer.model.train()
        trainer._terms(trainer.model, trainer._prepare_inputs(batch))


@pytest.mark.parametrize(
    "extra",
    [
        {"loss_type": "dpo", "divergence": "tv", "rho": 0.3},
        {"loss_type": "pdpo", "gamma": 0.1, "forward_kl_estimator": "ref_samples", "forward_kl_max_new_tokens": 4},
    ],
)
def test_validation_curve_leaves_training_unchanged(tmp_path, extra):
    from core.jobs.trainer_setup import curves

    plain = dpo_trainer(tmp_path / "plain", max_steps=4, **extra)
    plain.train()
    evaluated = dpo_trainer(
        tmp_path / "eval", eval_data=dataset(n=12, seed=1), eval_strategy="steps", eval_steps=2,
        eval_on_start=True, per_device_eval_batch_size=8, max_steps=4, **extra,
    )  # fmt: skip
    evaluated.train()
    assert logged(evaluated, "loss") == logged(plain, "loss")
    assert_params_equal(params(evaluated.model), params(plain.model))
    assert curves(evaluated.state.log_history)["eval_loss"]["step"] == [0, 2, 4]


@pytest.mark.parametrize(
    ("loss_type", "extra"),
    [("dpo", {"divergence": "tv", "rho": 0.3}), ("ddpo", {}), ("pdpo", {"gamma_schedule": "linear"}), ("edpo", {})],
)
def test_precomputed_reference_log_probs_train_and_validate_the_same(tmp_path, loss_type, extra):
    """The workflow precomputes pi_ref's log-probs once (core.jobs.train.train_dpo) and the trainer
    then drops pi_ref: the training losses, validation losses and weights equal those of a
    reference forward at every step."""
    ensemble = 3 if loss_type == "edpo" else 0
    runs = []
    for pre in (False, True):
        trainer = dpo_trainer(
            tmp_path / str(pre), data=dataset(24, ensemble=ensemble), eval_data=dataset(8, seed=1, ensemble=ensemble),
            loss_type=loss_type, max_steps=6, precompute_ref_log_probs=pre, eval_strategy="steps", eval_steps=3,
            per_device_eval_batch_size=4, **extra,
        )  # fmt: skip
        assert (trainer.ref_model is None) == pre  # precomputed: pi_ref is dropped before training
        trainer.train()
        runs.append((logged(trainer, "loss"), logged(trainer, "eval_loss"), params(trainer.model)))
    (loss_a, eval_a, params_a), (loss_b, eval_b, params_b) = runs
    assert len(loss_a) == 6 and len(eval_a) == 2
    assert np.allclose(loss_a, loss_b, atol=1e-6) and np.allclose(eval_a, eval_b, atol=1e-6)
    assert max_param_diff(params_a, params_b) < 1e-5


def test_reference_log_probs_computed_once_per_process_for_the_same_pairs_and_reference(tmp_path, monkeypatch):
    """A job's seeds share pi_ref's precomputed log-probs through the cache the job owns
    (DRDPOTrainer's ``ref_logps_cache``, core.jobs.train.train_dpo: ``job.cache``): the second
    trainer on the same pairs and pi_ref computes none and gets the same values; other pairs or
    another pi_ref are computed anew; a trainer without the cache computes its own."""
    from core.trainers import dpo as dpo_mod

    calls = []
    original = dpo_mod.DRDPOTrainer.compute_ref_log_probs
    monkeypatch.setattr(
        dpo_mod.DRDPOTrainer, "compute_ref_log_probs", lambda self, *a: calls.append(1) or original(self, *a)
    )
    shared: dict = {}
    common = dict(precompute_ref_log_probs=True, per_device_train_batch_size=4, max_steps=1, ref_logps_cache=shared)
    first = dpo_trainer(tmp_path / "a", data=dataset(12), seed=0, **common)
    n_first = len(calls)
    assert n_first == 3  # 12 pairs in batches of 4
    second = dpo_trainer(tmp_path / "b", data=dataset(12), seed=1, data_seed=1, **common)
    assert len(calls) == n_first
    for col in ("ref_chosen_logps", "ref_rejected_logps"):
        assert first.train_dataset[col] == second.train_dataset[col]
    dpo_trainer(tmp_path / "c", data=dataset(12, seed=5), **common)  # other pairs
    assert len(calls) == 2 * n_first
    other_ref = dpo_trainer(tmp_path / "d", data=dataset(12), model_seed=1, **common)  # another pi_ref
    assert len(calls) == 3 * n_first
    assert other_ref.train_dataset["ref_chosen_logps"] != first.train_dataset["ref_chosen_logps"]
    assert len(shared) == 3
    alone = {k: v for k, v in common.items() if k != "ref_logps_cache"}
    dpo_trainer(tmp_path / "e", data=dataset(12), **alone)  # no job cache: computed again
    dpo_trainer(tmp_path / "f", data=dataset(12), **alone)
    assert len(calls) == 5 * n_first and len(shared) == 3


def test_reference_log_probs_key_follows_row_order():
    """The cache key reads the rows a dataset shows (a shuffle or selection), not its backing table."""
    from datasets import Dataset

    from core.trainers.dpo import _token_fingerprint

    ds = Dataset.from_dict({"prompt_ids": [[1], [2], [3]], "chosen_ids": [[4], [5], [6]], "target": [0.0, 1.0, 2.0]})
    assert _token_fingerprint(ds) == _token_fingerprint(Dataset.from_dict(ds.to_dict()))
    assert _token_fingerprint(ds.select([2, 1, 0])) != _token_fingerprint(ds)
    assert _token_fingerprint(ds.select([0, 1])) == _token_fingerprint(ds.select(range(2)))
    assert _token_fingerprint(ds.select([0, 1])) != _token_fingerprint(ds)
    assert _token_fingerprint(ds.remove_columns("target")) == _token_fingerprint(ds)


def test_reference_kept_only_where_training_samples_from_it(tmp_path):
    """p-DPO's ``ref_samples`` estimator samples from pi_ref at every step: there the trainer keeps
    pi_ref after the precompute; with the dataset estimator it drops it."""
    kept = dpo_trainer(tmp_path / "a", loss_type="pdpo", forward_kl_estimator="ref_samples",
                       precompute_ref_log_probs=True)  # fmt: skip
    dropped = dpo_trainer(tmp_path / "b", loss_type="pdpo", forward_kl_estimator="dataset",
                          precompute_ref_log_probs=True)  # fmt: skip
    assert kept.ref_model is not None and dropped.ref_model is None
