"""Nothing non-finite is saved (core.trainers.guards): every trainer fails at the first nan/inf loss
or gradient norm, whatever its ``logging_steps``, and the final save refuses a nan/inf model and
leaves no model folder."""

from __future__ import annotations

import math
import os

import pytest
import torch
from trainer_helpers import dataset, reward_trainer, tokenizer
from transformers import TrainerCallback

from core.atomic import staging_directory
from core.jobs.job import Job
from core.jobs.trainer_setup import guard, save_final
from core.trainers.guards import NonFiniteError, NonFiniteGuard, raise_if_nonfinite_parameters

torch.set_num_threads(1)


def _sft_job(tmp_path, learning_rate: float) -> Job:
    """An SFT job (core.jobs.train.train_sft) on the tiny causal LM, tracking off."""
    from conftest import make_tiny_llama

    base = tmp_path / "base"
    if not base.exists():
        tok = tokenizer()
        make_tiny_llama(tok, seed=0).save_pretrained(base)
        tok.save_pretrained(base)
        dataset(32).to_parquet(str(tmp_path / "sft.parquet"))
    out = tmp_path / f"sft-{learning_rate:g}"
    train = {"max_steps": 6, "learning_rate": learning_rate, "per_device_train_batch_size": 8, "max_length": 32,
             "logging_steps": 100, "lr_scheduler_type": "constant"}  # fmt: skip
    return Job(
        rule="sft",
        input={"data": str(tmp_path / "sft.parquet"), "base": str(base)},
        output={"model": str(out / "model"), "metrics": str(out / "train.json")},
        params={"seed": 0, "model_spec": {}, "train": train},
        wildcards={},
    )


@pytest.mark.slow
def test_sft_with_a_huge_learning_rate_fails_and_leaves_no_model(tmp_path):
    """The issue's case: plain trl SFTTrainer, a huge learning rate; before the guard the job ended
    rc=0 with every tensor nan and ``loss 0.0`` logged. Logging every 100 steps does not hide it."""
    from core.jobs.train import train_sft

    ok = _sft_job(tmp_path, 1e-3)
    train_sft(ok)  # the same job with a sane learning rate writes its model
    assert os.path.isfile(os.path.join(ok.out("model"), "config.json")) and os.path.isfile(ok.out("metrics"))

    job = _sft_job(tmp_path, 1e30)
    with pytest.raises(NonFiniteError, match=r"non-finite (training loss|gradient norm) at optimiser step [0-9]+"):
        train_sft(job)
    model = job.out("model")
    assert not os.path.exists(model) and not os.path.exists(staging_directory(model))
    assert not os.path.exists(job.out("metrics"))


class _NanGradientsAtStep(TrainerCallback):
    """From optimiser step ``step`` on, one weight's gradient is nan (the loss stays finite)."""

    def __init__(self, param: torch.nn.Parameter, step: int) -> None:
        self.param, self.step, self.handle = param, step, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step and self.handle is None:
            self.handle = self.param.register_hook(lambda grad: grad * float("nan"))


def test_guard_stops_at_a_nan_gradient_of_the_last_step_whatever_the_logging_interval(tmp_path):
    """The reward model of the issue: its first nan fell on the last step and was saved. The guard
    sees every optimiser step (logging only every 100 steps) and stops before the step."""
    trainer = reward_trainer(tmp_path / "rm", max_steps=3, logging_steps=100)
    weight = trainer.model.model.layers[0].mlp.up_proj.weight
    trainer.add_callback(_NanGradientsAtStep(weight, step=3))
    guard(trainer)
    with pytest.raises(NonFiniteError, match=r"gradient norm \(nan\) at optimiser step 3; .*: \['model\.embed_tokens"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # step 3 never reached the weights


def test_guard_stops_at_a_nan_loss_and_on_logged_values():
    guard = NonFiniteGuard()
    state = type("State", (), {"global_step": 4})()
    args = type("Args", (), {"fp16": False})()
    model = torch.nn.Linear(2, 1)
    model(torch.ones(1, 2)).sum().backward()
    guard.observe_loss(torch.tensor(1.0))
    guard.on_pre_optimizer_step(args, state, None, model=model)  # finite: passes
    guard.observe_loss(torch.tensor(float("inf")))
    guard.observe_loss(torch.tensor(2.0))  # a later finite micro-batch does not clear it
    with pytest.raises(NonFiniteError, match="non-finite training loss at optimiser step 5"):
        guard.on_pre_optimizer_step(args, state, None, model=model)
    guard.on_log(args, state, None, logs={"loss": 0.5, "grad_norm": 1.0, "eval_loss": math.nan})
    with pytest.raises(NonFiniteError, match="logged grad_norm = inf"):
        guard.on_log(args, state, None, logs={"loss": 0.5, "grad_norm": math.inf})


class _NanWeightsAfterLastStep(TrainerCallback):
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == state.max_steps:
            with torch.no_grad():
                model.score.weight.fill_(float("nan"))
                model.model.norm.weight[0] = float("inf")


def test_save_refuses_a_reward_model_with_nan_weights_and_leaves_no_folder(tmp_path):
    trainer = reward_trainer(tmp_path / "rm", max_steps=2, callbacks=[_NanWeightsAfterLastStep()])
    guard(trainer).train()
    out = tmp_path / "model"
    with pytest.raises(
        NonFiniteError, match=r"2 of [0-9]+ tensors hold nan/inf.*\['model\.norm\.weight', 'score\.weight'\]"
    ):
        save_final(trainer.model, trainer.processing_class, str(out), trainer)
    assert not out.exists() and not staging_directory(out).exists()


def test_the_error_names_the_first_five_tensors():
    model = torch.nn.Sequential(*[torch.nn.Linear(1, 1) for _ in range(4)])
    with torch.no_grad():
        for layer in model:
            layer.weight.fill_(float("nan"))
            layer.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"8 of 8 tensors .*first 5: \['0.weight', '0.bias', '1.weight', "):
        raise_if_nonfinite_parameters(model)
