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


def test_the_guard_refuses_gradients_it_cannot_see_by_name():
    """Under DeepSpeed ZeRO stage 2-3 gradients live in the engine's partitions, not in .grad: the
    guard (and DR-PPO's gradient check) would check nothing, so the combination is refused by
    name; ZeRO stage 0-1 and plain runs are guarded."""
    from types import SimpleNamespace

    from core.trainers.guards import NonFiniteGuard

    def trainer(deepspeed: bool, stage: int) -> SimpleNamespace:
        plugin = SimpleNamespace(zero_stage=stage)
        return SimpleNamespace(is_deepspeed_enabled=deepspeed, accelerator=SimpleNamespace(
            state=SimpleNamespace(deepspeed_plugin=plugin)), training_step=lambda *a: None,
            add_callback=lambda cb: None)  # fmt: skip

    for stage in (2, 3):
        with pytest.raises(ValueError, match=f"DeepSpeed ZeRO stage {stage}: the non-finite gradient guard"):
            NonFiniteGuard().attach(trainer(True, stage))
    for ok in (trainer(True, 1), trainer(False, 3)):
        assert NonFiniteGuard().attach(ok) is ok


def test_lora_is_merged_in_float32_so_a_small_update_is_kept(tmp_path):
    """A LoRA update far below bf16's resolution of the base weights survives the merge: the model
    is saved in float32 with W + s B A computed in float32 (in bf16 it would round to W)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.models import build_tiny_llama

    tok_dir = tmp_path / "tok"
    tokenizer().save_pretrained(tok_dir)
    build_tiny_llama(str(tok_dir), str(tmp_path / "base"), seed=0, hidden_size=16, intermediate_size=32,
                     num_layers=1, num_heads=2)  # fmt: skip
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.bfloat16)
    w0 = base.model.layers[0].self_attn.q_proj.weight.detach().float().clone()
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                p.fill_(1e-3)
            if "lora_B" in name:
                p.fill_(1e-3)  # s B A = 2e-6 per entry: far below bf16's step at |w| ~ 0.02
    save_final(model, tokenizer(), str(tmp_path / "out"))
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    w = saved.model.layers[0].self_attn.q_proj.weight.detach()
    assert w.dtype == torch.float32
    assert torch.allclose(w - w0, torch.full_like(w, 2e-6), atol=1e-9)
