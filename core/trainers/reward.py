"""Distributionally robust reward-model training on trl 1.12's ``RewardTrainer`` (docs/design.md §1.2).

BTL RM: ``l_i = -log sigma(r(x_i, y_i+) - r(x_i, y_i-))`` (Bradley-Terry, DR paper §2 /
distillation paper eq. 2; trl's loss).
DR RM (DR paper Algorithm 1): minimise ``sum_i q*_i l_i`` with
``q* = argmax_{D(q, uniform) <= rho} sum_i q_i l_i`` over the **whole optimiser minibatch**
(every gradient-accumulation micro-batch on every data-parallel rank), optionally returning the
average of the iterates (Alg. 1 line 8).  How the minibatch is assembled across accumulation and
ranks is documented in :mod:`core.trainers.robust`: with one micro-batch per step the weights
come from the losses of the same forward pass (no extra compute); with ``G > 1`` a no-grad
pre-pass over the ``G`` micro-batches provides the losses, then each micro-batch's backward uses
its slice of ``q*``.

With DR off (``divergence="none"`` or ``rho=0``), and in evaluation (``eval_loss`` on an
``eval_dataset``), the loss is trl's own code path, the uniform mean, unchanged.
Logged per step (``dr/`` metrics and ``trainer.robust_history``): robust loss ``sum q_i l_i``,
mean loss, max weight, effective sample size ``1 / sum q_i^2``, fraction of zero weights.
trl's ``center_rewards_coefficient`` regulariser stays a plain mean (it is not reweighted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import RewardConfig, RewardTrainer

from core.losses import bradley_terry_loss
from core.trainers.robust import RobustMinibatchMixin, RobustTrainingArguments

__all__ = ["DRRewardConfig", "DRRewardTrainer"]


@dataclass
class DRRewardConfig(RobustTrainingArguments, RewardConfig):
    """trl's ``RewardConfig`` plus the DR reward model's settings (DR paper Algorithm 1:
    core.trainers.robust.RobustTrainingArguments)."""


class DRRewardTrainer(RobustMinibatchMixin, RewardTrainer):
    """trl ``RewardTrainer`` whose Bradley-Terry loss is reweighted by worst-case minibatch weights."""

    _tag_names = ["trl", "reward-trainer", "robust-rlhf"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs.get("args") if "args" in kwargs else (args[1] if len(args) > 1 else None)
        if not isinstance(config, DRRewardConfig):
            raise ValueError(f"DRRewardTrainer needs a DRRewardConfig as `args`, got {type(config).__name__}")
        super().__init__(*args, **kwargs)
        self._init_robust(self.args.average_iterates, self.args.ema_decay)

    # -------------------------------------------------------------- per-example losses
    @staticmethod
    def _bt_losses(logits: torch.Tensor, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rewards_chosen, rewards_rejected = torch.chunk(logits.squeeze(-1), chunks=2)
        losses = bradley_terry_loss(rewards_chosen, rewards_rejected, inputs.get("margin"))
        return losses, rewards_chosen, rewards_rejected

    def _example_statistics(self, model, inputs):
        model_inputs = {k: v for k, v in inputs.items() if k != "margin"}
        logits = model(**model_inputs, use_cache=False).logits
        losses, _, _ = self._bt_losses(logits, inputs)
        return losses, {}

    # -------------------------------------------------------------- loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._reweighting():  # DR off, or evaluation: trl's uniform mean
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # trl's forward pass and metrics; its mean loss is replaced by the reweighted one.
        _, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        losses, rewards_chosen, rewards_rejected = self._bt_losses(outputs.logits, inputs)
        weights, _, scale = self._microbatch_weights(losses.detach())
        loss = scale * (weights.to(losses.dtype) * losses).sum()
        if self.args.center_rewards_coefficient is not None:
            loss = loss + self.args.center_rewards_coefficient * torch.mean((rewards_chosen + rewards_rejected) ** 2)
        return (loss, outputs) if return_outputs else loss
