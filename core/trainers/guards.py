"""Nothing non-finite is trained on or saved: one guard for every trainer of the workflow.

:func:`guard_trainer` attaches a :class:`NonFiniteGuard` (a ``transformers.TrainerCallback``) to
any ``Trainer`` (trl's ``SFTTrainer``, the DR reward and DPO-family trainers); the job then fails
with :class:`NonFiniteError` at the first optimiser step whose

* **loss** is nan/inf: every micro-batch loss ``training_step`` returns is checked (the guard
  wraps the trainer's ``training_step``; the flags stay on the device, no sync per micro-batch);
* **gradient norm** is nan/inf: checked in ``on_pre_optimizer_step``, after backward and
  gradient clipping, before ``optimizer.step()`` (a non-finite total norm leaves nan/inf in the
  clipped gradients too), so a bad step never reaches the weights.

Both checks cost one pass over the gradients (``torch.nn.utils.get_total_norm``, the same work as
the Trainer's clipping) and one host sync per optimiser step; with several processes the two
flags are all-reduced, so every rank raises at the same step (no rank waits for the others in a
collective). ``on_log`` also checks the logged ``loss`` and ``grad_norm``. The per-step checks
are needed because the Trainer logs only every ``logging_steps`` steps and, with its default
``logging_nan_inf_filter=True``, replaces a nan/inf step loss by the mean of the earlier ones:
an SFT run with a huge learning rate logged ``loss 0.0`` while all of its weights were nan.

Limits: with fp16 mixed precision the gradient check is off (the GradScaler skips steps with
inf gradients on purpose; the workflow trains in float32 or bf16), and under DeepSpeed ZeRO the
gradients are not in ``param.grad`` (only the loss is checked).

:func:`raise_if_nonfinite_parameters` is the last line: every model the workflow saves
(``core.jobs.trainer_setup.save_final``, DR-PPO's ``save_model``) is checked tensor by tensor
before anything is written, so a nan/inf model never becomes a model folder (the error names
the first 5 bad tensors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback

__all__ = [
    "NonFiniteError",
    "NonFiniteGuard",
    "gradient_norm",
    "guard_trainer",
    "refuse_partitioned_gradients",
    "nonfinite_gradients",
    "nonfinite_tensors",
    "raise_if_nonfinite_parameters",
]

_SHOWN = 5


class NonFiniteError(FloatingPointError):
    """Training produced a nan/inf loss, gradient norm or parameter; the job stops, nothing is saved."""


def nonfinite_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[list[str], int]:
    """Names of the floating-point tensors of ``named`` holding a nan/inf, and how many were checked."""
    bad, total = [], 0
    for name, tensor in named:
        if not torch.is_tensor(tensor) or not tensor.is_floating_point():
            continue
        total += 1
        if not bool(torch.isfinite(tensor.detach()).all()):
            bad.append(name)
    return bad, total


def raise_if_nonfinite_parameters(model: Any, what: str = "model") -> None:
    """:class:`NonFiniteError` naming the first tensors of ``model``'s state dict (parameters and
    floating-point buffers: what ``save_pretrained`` writes) that hold a nan/inf."""
    bad, total = nonfinite_tensors(model.state_dict().items())
    if bad:
        raise NonFiniteError(
            f"{what}: {len(bad)} of {total} tensors hold nan/inf values (first {min(len(bad), _SHOWN)}: "
            f"{bad[:_SHOWN]}); refusing to save it, no model folder was written"
        )


def _gradients(model: Any) -> list[torch.Tensor]:
    return [p.grad for p in model.parameters() if p.grad is not None]


def gradient_norm(model: Any) -> torch.Tensor | None:
    """The total 2-norm of ``model``'s gradients (a 0-d tensor, no host sync), None without any."""
    grads = _gradients(model)
    if not grads:
        return None
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False)


def nonfinite_gradients(model: Any) -> list[str]:
    """Names of the parameters whose gradient holds a nan/inf."""
    named = ((n, p.grad) for n, p in model.named_parameters() if p.grad is not None)
    return nonfinite_tensors(named)[0]


def refuse_partitioned_gradients(trainer: Any) -> None:
    """Refuse, by name, a trainer whose gradients the non-finite check cannot see: under DeepSpeed
    ZeRO stage 2 or 3 they live in the engine's partitions, not in each parameter's ``.grad``, so
    the check before every optimiser step would pass without looking (the ``grad_norm`` Trainer logs
    there is computed after the step). ZeRO stage 0-1, DDP and single-process runs are checked."""
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return
    plugin = getattr(getattr(getattr(trainer, "accelerator", None), "state", None), "deepspeed_plugin", None)
    stage = int(getattr(plugin, "zero_stage", 0) or 0)
    if stage >= 2:
        raise ValueError(
            f"{type(trainer).__name__} under DeepSpeed ZeRO stage {stage}: the non-finite gradient guard "
            "(core.trainers.guards) cannot see gradients partitioned by the engine, so it would check nothing; "
            "use ZeRO stage 0 or 1, DDP, or one process"
        )


def _world_max(flags: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


class NonFiniteGuard(TrainerCallback):
    """Fails training at the first nan/inf loss or gradient norm (module docstring); attach it
    with :func:`guard_trainer` (the loss check needs the trainer's ``training_step``)."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self._loss_bad: torch.Tensor | None = None

    def attach(self, trainer: Any) -> Any:
        """Wrap ``trainer.training_step`` to watch the losses and add this callback; returns ``trainer``."""
        refuse_partitioned_gradients(trainer)
        inner = trainer.training_step

        def training_step(model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
            loss = inner(model, inputs, num_items_in_batch)
            self.observe_loss(loss)
            return loss

        trainer.training_step = training_step
        trainer.add_callback(self)
        self.trainer = trainer
        return trainer

    def observe_loss(self, loss: torch.Tensor) -> None:
        """Remember whether a micro-batch loss was nan/inf (checked at the next optimiser step)."""
        bad = ~torch.isfinite(loss.detach()).all()
        self._loss_bad = bad if self._loss_bad is None else self._loss_bad | bad.to(self._loss_bad.device)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        model = self.trainer.model if self.trainer is not None else model
        norm = None if args.fp16 or model is None else gradient_norm(model)
        device = norm.device if norm is not None else (self._loss_bad.device if self._loss_bad is not None else None)
        if device is None:
            return control
        loss_bad = self._loss_bad.to(device) if self._loss_bad is not None else torch.zeros((), device=device)
        grad_bad = ~torch.isfinite(norm) if norm is not None else torch.zeros((), dtype=torch.bool, device=device)
        flags = _world_max(torch.stack([loss_bad.float(), grad_bad.float()]))
        self._loss_bad = None
        loss_flag, grad_flag = flags.tolist()
        step = state.global_step + 1
        if loss_flag:
            raise NonFiniteError(
                f"non-finite training loss at optimiser step {step}: training stopped before the optimiser "
                "step, the model is not saved (lower the learning rate, check the data)"
            )
        if grad_flag:
            bad = nonfinite_gradients(model)
            raise NonFiniteError(
                f"non-finite gradient norm ({float(norm)}) at optimiser step {step}; parameters with nan/inf "
                f"gradients (first {min(len(bad), _SHOWN)} of {len(bad)}; the Trainer's clipping by a nan/inf "
                f"norm spreads it to all): {bad[:_SHOWN]}; training stopped before the optimiser step, the model "
                "is not saved"
            )
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, int | float) and not math.isfinite(value):
                raise NonFiniteError(f"logged {key} = {value} at optimiser step {state.global_step}; training stopped")
        return control


def guard_trainer(trainer: Any) -> NonFiniteGuard:
    """Attach a :class:`NonFiniteGuard` to ``trainer`` (before ``trainer.train()``); returns it."""
    guard = NonFiniteGuard()
    guard.attach(trainer)
    return guard
