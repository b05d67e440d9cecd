"""DR reward trainer (core.trainers.reward) on a tiny random Llama: DR over the optimiser minibatch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from trainer_helpers import (
    assert_params_equal,
    dataset,
    dr_and_trl_eval_losses,
    logged,
    max_param_diff,
    params,
    reward_trainer,
    with_domain_share,
)
from transformers import TrainerCallback
from trl import RewardTrainer

from core.trainers.guards import NonFiniteError
from core.trainers.reward import DRRewardConfig, DRRewardTrainer
from core.trainers.robust import solve_step_weights

torch.set_num_threads(1)
TESTS = os.path.dirname(os.path.abspath(__file__))
DR_KEYS = ("dr/robust_loss", "dr/mean_loss", "dr/max_weight", "dr/ess", "dr/frac_zero_weights")


@torch.no_grad()
def example_weights(trainer, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example losses of one collated batch and ``q*`` over that batch alone (float64, CPU)."""
    trainer.model.train()
    losses, _ = trainer._example_statistics(trainer.model, trainer._prepare_inputs(batch))
    weights, _, selected = solve_step_weights(losses.double().cpu().numpy(), *trainer._robust_settings())
    return torch.from_numpy(np.ascontiguousarray(selected)), torch.from_numpy(weights)


@pytest.mark.parametrize("divergence,rho", [("none", 0.0), ("tv", 0.3), ("chi2", 0.5)])
def test_loss_falls(tmp_path, divergence, rho):
    trainer = reward_trainer(tmp_path, data=dataset(minority=0.0), divergence=divergence, rho=rho, max_steps=12)
    trainer.train()
    losses = logged(trainer, "loss")
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1


def test_dr_metrics_logged_per_step(tmp_path):
    trainer = reward_trainer(tmp_path, divergence="tv", rho=0.3, max_steps=3)
    trainer.train()
    for key in DR_KEYS:
        assert len(logged(trainer, key)) == 3, key
    assert [r["step"] for r in trainer.robust_history] == [1, 2, 3]
    for record, loss in zip(trainer.robust_history, logged(trainer, "loss"), strict=True):
        assert record["n"] == 8
        assert record["robust_loss"] >= record["mean_loss"]  # the worst case dominates the mean
        assert record["robust_loss"] == pytest.approx(loss, rel=1e-5)  # the optimised loss is the robust one
        assert 1.0 <= record["ess"] < 8.0 and 1 / 8 < record["max_weight"] <= 1.0
        assert 0.0 <= record["frac_zero_weights"] < 1.0


@pytest.mark.parametrize("divergence", ["tv", "none"])
def test_rho_zero_is_trl_bit_for_bit(tmp_path, divergence):
    kwargs = dict(max_steps=3, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    ours = reward_trainer(tmp_path / "dr", divergence=divergence, rho=0.0, **kwargs)
    ours.train()
    theirs = reward_trainer(tmp_path / "trl", trainer_cls=RewardTrainer, **kwargs)
    theirs.train()
    assert_params_equal(params(ours.model), params(theirs.model))
    assert logged(ours, "loss") == logged(theirs, "loss")


def test_dr_path_with_uniform_weights_matches_trl(tmp_path):
    # CVaR with alpha = 1 is a robust run (rho > 0) whose weights are exactly uniform: the reweighted
    # backward over 2 accumulated micro-batches must reproduce trl's mean loss gradient.
    kwargs = dict(
        max_steps=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        optim="sgd",
        learning_rate=0.05,
    )
    ours = reward_trainer(tmp_path / "dr", divergence="cvar", rho=1.0, **kwargs)
    ours.train()
    assert all(r["max_weight"] == pytest.approx(1 / 8) for r in ours.robust_history)
    theirs = reward_trainer(tmp_path / "trl", trainer_cls=RewardTrainer, **kwargs)
    theirs.train()
    assert max_param_diff(params(ours.model), params(theirs.model)) < 1e-6
    assert logged(ours, "loss") == pytest.approx(logged(theirs, "loss"), abs=1e-6)


def test_planted_minority_domain_gets_more_weight(tmp_path):
    data = dataset(n=32, minority=0.25)
    trainer = reward_trainer(tmp_path, data=data, divergence="tv", rho=0.3, max_steps=10)
    trainer.train()
    domains = trainer.train_dataset["domain"]
    majority = [i for i, d in enumerate(domains) if d == "dA"][:6]
    minority = [i for i, d in enumerate(domains) if d == "dB"][:2]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in majority + minority])
    losses, weights = example_weights(trainer, batch)
    assert torch.isclose(weights.sum(), torch.tensor(1.0, dtype=weights.dtype))
    share = float(weights[6:].sum())
    assert share > 2 / 8 + 0.1, (share, losses)


def test_minority_domain_weight_share_during_training(tmp_path):
    trainer = reward_trainer(
        tmp_path, data=dataset(n=32, minority=0.25), trainer_cls=with_domain_share(DRRewardTrainer),
        divergence="tv", rho=0.3, max_steps=10,
    )  # fmt: skip
    trainer.train()
    weight_share, frequency = np.mean(trainer.domain_share, axis=0)
    assert frequency > 0 and weight_share > frequency + 0.05, trainer.domain_share


def test_accumulated_minibatch_weights_equal_one_big_batch(tmp_path):
    common = dict(divergence="tv", rho=0.3, max_steps=2, optim="sgd", learning_rate=0.05)
    accumulated = reward_trainer(
        tmp_path / "acc", per_device_train_batch_size=2, gradient_accumulation_steps=4, **common
    )
    accumulated.train()
    big = reward_trainer(tmp_path / "big", per_device_train_batch_size=8, gradient_accumulation_steps=1, **common)
    big.train()
    # the weights were solved once over all 8 examples of the step, not per micro-batch of 2
    assert [r["n"] for r in accumulated.robust_history] == [8, 8]
    a, b = accumulated.last_robust_step, big.last_robust_step
    np.testing.assert_allclose(a.losses, b.losses, atol=1e-6)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-9)
    assert max(b.weights) > 1 / 8  # really reweighted
    for ra, rb in zip(accumulated.robust_history, big.robust_history, strict=True):
        assert ra["robust_loss"] == pytest.approx(rb["robust_loss"], abs=1e-6)
    assert max_param_diff(params(accumulated.model), params(big.model)) < 1e-6


def test_resume_matches_uninterrupted_run(tmp_path):
    common = dict(
        divergence="chi2",
        rho=0.5,
        average_iterates="uniform",
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
    )
    full = reward_trainer(tmp_path / "full", **common)
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-2"
    assert (checkpoint / "robust_state.json").is_file() and (checkpoint / "iterate_average.safetensors").is_file()
    resumed = reward_trainer(tmp_path / "resumed", **common)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert_params_equal(params(resumed.model), params(full.model))
    assert resumed.robust_history == full.robust_history


class _Recorder(TrainerCallback):
    def __init__(self):
        self.snapshots = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.snapshots.append({k: v.detach().clone() for k, v in model.named_parameters()})


@pytest.mark.parametrize("mode", ["uniform", "ema"])
def test_iterate_average_becomes_the_saved_model(tmp_path, mode):
    recorder = _Recorder()
    trainer = reward_trainer(
        tmp_path,
        divergence="tv",
        rho=0.3,
        average_iterates=mode,
        ema_decay=0.5,
        max_steps=4,
        callbacks=[recorder],
    )
    trainer.train()
    snaps = recorder.snapshots
    assert len(snaps) == 4
    for name, value in trainer.model.named_parameters():
        if mode == "uniform":
            expected = torch.stack([s[name] for s in snaps]).mean(dim=0)
        else:
            expected = snaps[0][name]
            for s in snaps[1:]:
                expected = 0.5 * expected + 0.5 * s[name]
        torch.testing.assert_close(value.detach(), expected, atol=1e-6, rtol=1e-5)
    assert not torch.equal(trainer.model.score.weight, snaps[-1]["score.weight"])  # not the last iterate
    trainer.save_model(str(tmp_path / "final"))
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "final" / "model.safetensors"))
    torch.testing.assert_close(saved["score.weight"], trainer.model.score.weight.detach())


class _PoisonAt(TrainerCallback):
    """Sets the reward head to NaN at the start (or end) of optimiser step ``step``."""

    def __init__(self, step: int, when: str):
        self.step, self.when = step, when

    def _poison(self, state, model):
        if (
            state.global_step == self.step - 1
            and self.when == "begin"
            or state.global_step == self.step
            and self.when == "end"
        ):
            with torch.no_grad():
                model.score.weight.fill_(float("nan"))

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.when == "begin":
            self._poison(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.when == "end":
            self._poison(state, model)


@pytest.mark.parametrize("rho", [0.0, 0.3])
def test_nan_loss_stops_without_checkpoint(tmp_path, rho):
    trainer = reward_trainer(
        tmp_path,
        divergence="tv",
        rho=rho,
        max_steps=4,
        save_strategy="steps",
        save_steps=1,
        callbacks=[_PoisonAt(3, "begin")],
    )
    with pytest.raises(NonFiniteError, match="non-finite .*step 3"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint-1",
        "checkpoint-2",
    ]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "checkpoint-2" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_nonfinite_parameters_are_never_checkpointed(tmp_path):
    trainer = reward_trainer(
        tmp_path,
        divergence="tv",
        rho=0.3,
        max_steps=4,
        save_strategy="steps",
        save_steps=1,
        callbacks=[_PoisonAt(2, "end")],
    )
    with pytest.raises(NonFiniteError, match="checkpoint at optimiser step 2: .* nan/inf values .*refusing to save it"):
        trainer.train()
    assert not (tmp_path / "checkpoint-2").exists() and (tmp_path / "checkpoint-1").is_dir()


def test_same_seed_same_weights(tmp_path):
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        trainer = reward_trainer(tmp_path / name, divergence="tv", rho=0.3, max_steps=3, seed=seed, data_seed=seed)
        trainer.train()
        runs.append(params(trainer.model))
    assert_params_equal(runs[0], runs[1])
    assert max_param_diff(runs[0], runs[2]) > 0  # the data order follows the seed


@pytest.mark.parametrize(
    "field,value",
    [
        ("divergence", "l2"),
        ("rho", -0.1),
        ("rho", float("nan")),
        ("average_iterates", "best"),
        ("ema_decay", 1.0),
    ],
)
def test_config_validation(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        DRRewardConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **{field: value})


def test_dr_fields_have_one_owner(tmp_path):
    """The reward-model, DPO and PPO configs take the DR ball (and the first two the iterate
    average) from one mixin: the same fields, help and error for the same bad value."""
    import dataclasses

    from core.trainers.dpo import DRDPOConfig
    from core.trainers.ppo import DRPPOConfig
    from core.trainers.robust import RobustBallArguments, RobustTrainingArguments

    owned = {f.name: f for f in dataclasses.fields(RobustTrainingArguments)}
    assert set(owned) == {"divergence", "rho", "average_iterates", "ema_decay"}
    for config, base in ((DRRewardConfig, RobustTrainingArguments), (DRDPOConfig, RobustTrainingArguments)):
        assert issubclass(config, base)
        fields = {f.name: f for f in dataclasses.fields(config)}
        assert all(fields[n].metadata == owned[n].metadata for n in owned)
    assert issubclass(DRPPOConfig, RobustBallArguments) and not issubclass(DRPPOConfig, RobustTrainingArguments)
    messages = set()
    for config, extra in ((DRRewardConfig, {}), (DRDPOConfig, {}), (DRPPOConfig, {"robust_version": "vA"})):
        with pytest.raises(ValueError, match="config field 'rho'") as err:
            config(output_dir=str(tmp_path), use_cpu=True, bf16=False, divergence="tv", rho=-1.0, **extra)
        messages.add(str(err.value))
    assert len(messages) == 1


def test_cvar_alpha_above_one_rejected(tmp_path):
    with pytest.raises(ValueError, match="rho"):
        DRRewardConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, divergence="cvar", rho=1.5)


def test_trainer_needs_dr_config(tmp_path):
    from trainer_helpers import make_tiny_llama, tokenizer
    from trl import RewardConfig

    tok = tokenizer()
    with pytest.raises(ValueError, match="DRRewardConfig"):
        DRRewardTrainer(
            model=make_tiny_llama(tok, reward=True),
            args=RewardConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False),
            train_dataset=dataset(),
            processing_class=tok,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_uses_global_minibatch(tmp_path):
    import ddp_reward_worker
    from safetensors.torch import load_file

    out = tmp_path / "ddp"
    out.mkdir()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([os.path.dirname(TESTS), TESTS]),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), os.path.join(TESTS, "ddp_reward_worker.py"), str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    single = ddp_reward_worker.run(str(tmp_path / "single"), world=1)
    # With 2 micro-batches of 2 per rank, accelerate deals batches round-robin: rank 0 holds
    # examples 0,1,4,5 and rank 1 holds 2,3,6,7, so the gathered vector is this permutation.
    orders = {1: list(range(8)), 2: [0, 1, 4, 5, 2, 3, 6, 7]}
    for accumulation, order in orders.items():
        ranks = [json.loads((out / f"rank{r}_acc{accumulation}.json").read_text()) for r in (0, 1)]
        assert [r["world"] for r in ranks] == [2, 2] and [r["offset"] for r in ranks] == [0, 4]
        # every rank solved the same weights on the gathered global minibatch of 8 ...
        assert ranks[0]["weights"] == ranks[1]["weights"] and len(ranks[0]["weights"]) == 8
        assert all(r["n"] == 8 for r in ranks[0]["history"])
        # ... kept its own slice (which alone does not sum to 1) ...
        for r in ranks:
            assert r["local"] == r["weights"][r["offset"] : r["offset"] + 4]
        local_sums = [sum(r["local"]) for r in ranks]
        assert local_sums[0] != pytest.approx(1.0) and sum(local_sums) == pytest.approx(1.0)
        # ... and the run equals one process with the same global minibatch
        expected = np.asarray(single["weights"])[order]
        np.testing.assert_allclose(ranks[0]["weights"], expected, atol=1e-9)
        for a, b in zip(ranks[0]["history"], single["history"], strict=True):
            assert a["robust_loss"] == pytest.approx(b["robust_loss"], abs=1e-6)
        final = load_file(str(out / f"final_acc{accumulation}.safetensors"))
        assert max_param_diff(final, single["params"]) < 1e-5


# ------------------------------------------------------------------ validation loss
def test_dr_eval_loss_is_the_uniform_mean(tmp_path):
    # fitted to the majority domain, the model has large losses on the flipped half of the validation set
    ours, ours_loss, trl_loss, n_val = dr_and_trl_eval_losses(reward_trainer, RewardTrainer, tmp_path, max_steps=12)
    assert ours_loss == pytest.approx(trl_loss, abs=1e-6)
    batch = ours.data_collator([ours.eval_dataset[i] for i in range(n_val)])
    with torch.no_grad():
        losses, _ = ours._example_statistics(ours.model, ours._prepare_inputs(batch))
    assert ours_loss == pytest.approx(float(losses.mean()), abs=1e-6)
    # the worst-case reweighted loss (what training optimises) is well above: not what eval reports
    assert float(losses.topk(3).values.mean()) > ours_loss + 0.05
    assert [r["step"] for r in ours.robust_history] == list(range(1, 13))  # evaluation recorded no weights


def test_validation_curve_leaves_dr_training_unchanged(tmp_path):
    from core.jobs.trainer_setup import curves

    common = dict(divergence="cvar", rho=0.5, max_steps=4)
    plain = reward_trainer(tmp_path / "plain", **common)
    plain.train()
    evaluated = reward_trainer(
        tmp_path / "eval", eval_data=dataset(n=12, seed=1), eval_strategy="steps", eval_steps=2,
        eval_on_start=True, per_device_eval_batch_size=8, **common,
    )  # fmt: skip
    evaluated.train()
    assert logged(evaluated, "loss") == logged(plain, "loss")
    assert_params_equal(params(evaluated.model), params(plain.model))
    assert [r["step"] for r in evaluated.robust_history] == [1, 2, 3, 4]
    series = curves(evaluated.state.log_history)
    assert series["eval_loss"]["step"] == [0, 2, 4]
    assert series["eval_loss"]["value"][-1] == pytest.approx(evaluated.evaluate()["eval_loss"], abs=1e-6)


def test_eval_args_schedule(tmp_path):
    from core.jobs.job import Job
    from core.jobs.trainer_setup import eval_args, planned_steps, trainer_args

    def job(train, nproc=1):
        return Job(rule="r", input={}, output={}, params={"train": train, "job": {"nproc": nproc}}, wildcards={})

    assert eval_args(job({"max_steps": 40, "per_device_train_batch_size": 16}), DRRewardConfig, 1000) == {
        "eval_strategy": "steps",
        "eval_steps": 4,
        "eval_on_start": True,
        "per_device_eval_batch_size": 16,
    }
    assert eval_args(job({"max_steps": 25}), DRRewardConfig, 10)["eval_steps"] == 2
    assert eval_args(job({"max_steps": 5}), DRRewardConfig, 10)["eval_steps"] == 1
    assert eval_args(job({"max_steps": 40, "eval_steps": 7}), DRRewardConfig, 10)["eval_steps"] == 7
    # epochs: 1000 rows / (8 per device x 2 processes) = 63 micro-batches, / 2 accumulated = 32 updates x 2 epochs
    epochs = {"num_train_epochs": 2, "gradient_accumulation_steps": 2}
    assert planned_steps(DRRewardConfig, epochs, 1000, nproc=2) == 64
    assert eval_args(job(epochs, nproc=2), DRRewardConfig, 1000)["eval_steps"] == 6
    assert eval_args(job({}), DRRewardConfig, 10)["per_device_eval_batch_size"] == 8  # the config default
    job_ = Job(rule="r", input={}, output={}, params={"train": {"max_steps": 40}, "job": {"gpu": 0}}, wildcards={})
    args = trainer_args(job_, DRRewardConfig, str(tmp_path), 0, **eval_args(job_, DRRewardConfig, 100))
    assert args.eval_strategy == "steps" and args.eval_steps == 4 and args.eval_on_start


def test_trainer_args_float32_without_checkpointing_unless_the_config_asks(tmp_path):
    """trl's configs default to bf16 and gradient checkpointing; the workflow turns both off unless the
    config's train block sets them (core.jobs.trainer_setup.trainer_args)."""
    from core.jobs.job import Job
    from core.jobs.trainer_setup import trainer_args

    def args(train):
        job = Job(rule="r", input={}, output={}, params={"train": train, "job": {"gpu": 0}}, wildcards={})
        return trainer_args(job, DRRewardConfig, str(tmp_path), 0)

    assert DRRewardConfig.__dataclass_fields__["gradient_checkpointing"].default is True  # trl's default
    plain = args({"max_steps": 4})
    assert plain.gradient_checkpointing is False and plain.bf16 is False
    assert args({"max_steps": 4, "gradient_checkpointing": True}).gradient_checkpointing is True
