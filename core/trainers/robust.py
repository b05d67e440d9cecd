"""Worst-case reweighting over the whole optimiser minibatch, shared by the DR trl trainers.

Maths (docs/design.md §1.1; DR paper Alg. 1 lines 4-6 and Alg. 3 lines 4-5): for the ``N`` examples
of ONE optimiser step, ``q* = argmax_{q in simplex, D(q, 1/N) <= rho} sum_i q_i l_i`` is solved on
the detached losses (``core.dro.worst_case_weights``) and held fixed, so the step's gradient is
``sum_i q*_i grad l_i`` (Danskin).

How the optimiser minibatch is assembled
----------------------------------------
transformers' ``Trainer`` fetches the ``G`` gradient-accumulation micro-batches of an optimiser
step in one call (``get_batch_samples``), then runs ``training_step`` (forward + backward) on each;
it divides each micro-batch loss by ``G`` and DDP averages the gradients over the ``W`` ranks.

* ``G = 1`` (inline, no extra compute): ``compute_loss`` builds the per-example losses with their
  autograd graph, all-gathers the *detached* losses of the ``W`` ranks, solves ``q*`` once on the
  concatenation (identically on every rank) and back-propagates ``W * sum_{i on this rank} q_i l_i``;
  DDP's average over ranks leaves ``sum_i q_i grad l_i`` over the global minibatch.
* ``G > 1`` (pre-pass): ``get_batch_samples`` runs a no-grad forward over the ``G`` micro-batches
  of this rank, all-gathers the detached per-example losses, solves ``q*`` once and queues each
  micro-batch's slice; the micro-batch's backward then uses ``W * G * sum_{i in micro-batch} q_i l_i``
  (the Trainer's ``1/G`` and DDP's ``1/W`` cancel the factors).  Cost: one extra no-grad policy
  forward per micro-batch (the DPO trainer caches the reference log-probs computed in the
  pre-pass, so the reference model still runs once).  The pre-pass losses equal those of the
  backward pass only for a deterministic forward: keep dropout off (trl's default
  ``disable_dropout=True``).

The global loss vector is ordered rank 0's micro-batches (in order), then rank 1's, ...
Regularisers outside the robust objective (reward centring, the forward-KL pessimism term) are
not reweighted: they keep trl's plain mean.

Only training is reweighted (:meth:`RobustMinibatchMixin._reweighting`: model in train mode and
DR on).  Evaluation (``Trainer.evaluate`` -> ``prediction_step``, model in eval mode) takes the
uniform mean of the per-example losses, so a DR model's ``eval_loss`` is the plain validation loss,
comparable with its baseline's; it records nothing in ``robust_history`` and leaves the
random-number state as it found it (training's results do not depend on a validation set).

Iterate averaging (DR paper Alg. 1 line 8 / Alg. 3 line 8, ``theta_bar = (1/T) sum_t theta_t``):
``average_iterates="uniform"`` keeps the running mean of the trainable parameters after each
optimiser step (the ``T`` post-update iterates; the paper's indexing includes the initial point and
drops the last one, a one-iterate shift), ``"ema"`` an exponential moving average started at the
first post-update iterate.  The average is stored in every checkpoint and restored on resume; at
the end of ``train()`` it is copied into the model, so it is what ``save_model`` writes.

Safety: a non-finite loss raises ``core.trainers.guards.NonFiniteError`` before the optimiser step (all ranks
raise together), and a checkpoint is never written from non-finite parameters.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from core.atomic import atomic_write, atomic_write_json
from core.dro import all_gather_rows, check_radius, weight_statistics, worst_case_weights
from core.losses import ensemble_member
from core.trainers.guards import NonFiniteError, raise_if_nonfinite_parameters
from core.vocab import AVERAGE_ITERATES, DIVERGENCES

__all__ = [
    "ITERATE_AVERAGE_FILE",
    "ROBUST_STATE_FILE",
    "IterateAverager",
    "RobustBallArguments",
    "RobustMinibatchMixin",
    "RobustStep",
    "RobustTrainingArguments",
    "robust_enabled",
    "solve_step_weights",
]

ROBUST_STATE_FILE = "robust_state.json"
ITERATE_AVERAGE_FILE = "iterate_average.safetensors"
_METRIC_NAMES = tuple(
    (key, f"dr/{key}") for key in ("robust_loss", "mean_loss", "max_weight", "ess", "frac_zero_weights")
)


def _validate_ball(divergence: str, rho: float) -> None:
    if divergence not in DIVERGENCES:
        raise ValueError(f"config field 'divergence': expected one of {list(DIVERGENCES)}, got {divergence!r}")
    try:
        check_radius(divergence, rho)
    except ValueError as err:
        raise ValueError(f"config field 'rho': {err}") from None


@dataclass
class RobustBallArguments:
    """The DR ball of every robust trainer's config (mixed in before trl's config class):
    ``{q in simplex: D(q, 1/N) <= rho}`` around the uniform minibatch weights (DR paper eq. 4;
    docs/design.md §1.1); ``rho = 0`` or ``divergence = "none"`` is the non-robust trainer."""

    divergence: str = field(
        default="none",
        metadata={"help": f"Ball around the uniform minibatch weights: one of {', '.join(DIVERGENCES)}."},
    )
    rho: float = field(default=0.0, metadata={"help": "Radius of the ball (CVaR: alpha in (0, 1]); 0 = non-robust."})

    def __post_init__(self) -> None:
        _validate_ball(self.divergence, self.rho)
        super().__post_init__()


@dataclass
class RobustTrainingArguments(RobustBallArguments):
    """The ball plus iterate averaging (DR paper Alg. 1 / Alg. 3 line 8: the average of the
    iterates becomes the final, saved model): the reward-model and DPO trainers' DR fields."""

    average_iterates: str = field(
        default="none",
        metadata={"help": f"One of {', '.join(AVERAGE_ITERATES)}: no average, the uniform mean or an EMA."},
    )
    ema_decay: float = field(default=0.999, metadata={"help": "Decay of the EMA when average_iterates='ema'."})

    def __post_init__(self) -> None:
        if self.average_iterates not in AVERAGE_ITERATES:
            raise ValueError(
                f"config field 'average_iterates': expected one of {list(AVERAGE_ITERATES)}, "
                f"got {self.average_iterates!r}"
            )
        if not isinstance(self.ema_decay, (int, float)) or not 0.0 < float(self.ema_decay) < 1.0:
            raise ValueError(f"config field 'ema_decay': expected a number in (0, 1), got {self.ema_decay!r}")
        super().__post_init__()  # the ball's checks, then trl's


def robust_enabled(divergence: str, rho: float) -> bool:
    """DR reweighting is on unless ``divergence == "none"`` or ``rho == 0`` (both give uniform weights)."""
    return divergence != "none" and float(rho) > 0.0


def solve_step_weights(
    global_losses: np.ndarray, divergence: str, rho: float
) -> tuple[np.ndarray, int | None, np.ndarray]:
    """Worst-case weights of one optimiser minibatch.

    ``global_losses`` is ``[N]`` (one loss per example) or ``[N, K]`` (one column per ensemble
    member, e-DPO).  For ``[N, K]`` every member gets its own worst-case weights ``q_k`` and the
    member with the smallest robust loss ``sum_i q_ki l_ik`` is selected (``min_k max_q``, the
    e-DPO min of distillation paper eq. 11 taken per minibatch, footnote 5; ties -> lowest index;
    ``core.losses.ensemble_member``).  Returns ``(weights [N], member or None, selected losses [N])``.
    """
    if global_losses.ndim == 1:
        return worst_case_weights(global_losses, divergence, rho), None, global_losses
    if global_losses.ndim != 2 or global_losses.shape[1] == 0:
        raise ValueError(f"losses must be [N] or [N, K] with K >= 1, got shape {global_losses.shape}")
    per_member = [worst_case_weights(global_losses[:, k], divergence, rho) for k in range(global_losses.shape[1])]
    member = ensemble_member(global_losses, per_member)
    return per_member[member], member, global_losses[:, member]


@dataclass
class RobustStep:
    """What one optimiser step's reweighting produced (global vectors, in rank order)."""

    losses: np.ndarray
    weights: np.ndarray
    member: int | None
    offset: int
    record: dict[str, Any]

    def local_weights(self, count: int, device: torch.device) -> torch.Tensor:
        """This rank's slice of the weights as a float32 tensor."""
        return torch.as_tensor(self.weights[self.offset : self.offset + count], dtype=torch.float32, device=device)


class IterateAverager:
    """Running uniform mean or EMA of the trainable parameters (DR paper Alg. 1 line 8)."""

    def __init__(self, mode: str, decay: float) -> None:
        if mode == "none" or mode not in AVERAGE_ITERATES:
            raise ValueError(f"average_iterates must be 'uniform' or 'ema' here, got {mode!r}")
        self.mode = mode
        self.decay = float(decay)
        self.count = 0
        self.average: dict[str, torch.Tensor] = {}

    def reset(self) -> None:
        self.count = 0
        self.average = {}

    @staticmethod
    def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the current parameters in: ``avg += (p - avg)/(t+1)`` (uniform) or ``avg = d avg + (1-d) p``."""
        params = self._trainable(model)
        if self.count == 0:
            self.average = {name: p.float().clone() for name, p in params.items()}
        elif self.mode == "uniform":
            for name, p in params.items():
                avg = self.average[name]
                avg.add_(p.float() - avg, alpha=1.0 / (self.count + 1))
        else:
            for name, p in params.items():
                self.average[name].mul_(self.decay).add_(p.float(), alpha=1.0 - self.decay)
        self.count += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite the trainable parameters of ``model`` with the average."""
        for name, p in self._trainable_params(model).items():
            p.copy_(self.average[name].to(device=p.device, dtype=p.dtype))

    @staticmethod
    def _trainable_params(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        return {name: p for name, p in model.named_parameters() if p.requires_grad}

    def save(self, directory: str) -> None:
        """Write the average as safetensors (atomically) into ``directory``."""
        from safetensors.torch import save_file

        tensors = {name: t.detach().cpu().contiguous() for name, t in self.average.items()}
        atomic_write(
            os.path.join(directory, ITERATE_AVERAGE_FILE),
            lambda tmp: save_file(tensors, tmp, metadata={"mode": self.mode, "count": str(self.count)}),
        )

    def load(self, directory: str, model: torch.nn.Module, count: int) -> None:
        """Read the average written by :meth:`save`; ``ValueError`` if it does not match ``model``."""
        from safetensors.torch import load_file

        path = os.path.join(directory, ITERATE_AVERAGE_FILE)
        if not os.path.isfile(path):
            raise ValueError(
                f"{path}: missing; the checkpoint was not written with average_iterates={self.mode!r}, "
                "so the iterate average cannot be resumed"
            )
        loaded = load_file(path, device="cpu")
        params = self._trainable(model)
        if set(loaded) != set(params):
            missing = sorted(set(params) - set(loaded))[:3]
            raise ValueError(f"{path}: parameter names do not match the model (e.g. missing {missing})")
        self.average = {name: loaded[name].to(device=params[name].device, dtype=torch.float32) for name in params}
        self.count = int(count)


class _IterateAveragingCallback(TrainerCallback):
    """Folds the parameters into the trainer's averager after every optimiser step."""

    def __init__(self, trainer: RobustMinibatchMixin) -> None:
        self._trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D401 - transformers hook
        averager = self._trainer._averager
        if averager is not None:
            averager.update(self._trainer.model)
        return control


class RobustMinibatchMixin:
    """Worst-case minibatch weights for a trl trainer (put it first in the bases).

    The concrete trainer provides ``_robust_settings()`` (divergence, rho), may widen
    ``_needs_global_batch()``, and implements ``_example_statistics(model, inputs)``: the
    detached per-example losses of one prepared micro-batch (``[n]`` or ``[n, K]``) plus an
    optional dict of tensors to cache into that micro-batch for its backward pass.  Its
    ``compute_loss`` asks :meth:`_microbatch_weights` for the weights of the current micro-batch.
    """

    # ------------------------------------------------------------------ set-up
    def _init_robust(self, average_iterates: str, ema_decay: float) -> None:
        self._robust_queue: deque[tuple[torch.Tensor, int | None, int]] = deque()
        self.robust_history: list[dict[str, Any]] = []
        self.last_robust_step: RobustStep | None = None
        self._averager = None if average_iterates == "none" else IterateAverager(average_iterates, ema_decay)
        if self._averager is not None:
            self.add_callback(_IterateAveragingCallback(self))

    def _robust_settings(self) -> tuple[str, float]:
        return self.args.divergence, float(self.args.rho)

    def _robust_on(self) -> bool:
        return robust_enabled(*self._robust_settings())

    def _needs_global_batch(self) -> bool:
        """Whether training needs statistics of the whole optimiser minibatch (DR on by default)."""
        return self._robust_on()

    def _reweighting(self) -> bool:
        """Whether the loss being computed takes minibatch weights: in training only (model in train
        mode); evaluation always takes the uniform mean of the per-example losses."""
        return bool(self.model.training) and self._needs_global_batch()

    def _example_statistics(
        self, model: torch.nn.Module, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement _example_statistics")

    # ------------------------------------------------------------------ minibatch pre-pass
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._robust_queue.clear()
        if self._needs_global_batch() and len(batch_samples) > 1:
            self._prepass(batch_samples)
        return batch_samples, num_items_in_batch

    def _prepass(self, batch_samples: Sequence[dict[str, Any]]) -> None:
        """No-grad forward over the accumulated micro-batches; queue each one's slice of ``q*``."""
        model = self.model
        model.train()
        stats, sizes = [], []
        with torch.no_grad():
            for batch in batch_samples:
                local, cache = self._example_statistics(model, self._prepare_inputs(batch))
                for key, value in cache.items():
                    batch[key] = value
                stats.append(local.detach())
                sizes.append(local.shape[0])
        step = self._solve_and_record(torch.cat(stats))
        weights = step.local_weights(sum(sizes), stats[0].device)
        start = 0
        for size in sizes:
            self._robust_queue.append((weights[start : start + size], step.member, len(batch_samples)))
            start += size

    def _solve_and_record(self, local_losses: torch.Tensor) -> RobustStep:
        global_losses, offset = all_gather_rows(local_losses)
        losses = global_losses.to(device="cpu", dtype=torch.float64).numpy()
        step_no = self.state.global_step + 1
        if not np.isfinite(losses).all():
            bad = int(np.flatnonzero(~np.isfinite(losses).reshape(losses.shape[0], -1).all(axis=1))[0])
            raise NonFiniteError(
                f"non-finite loss at optimiser step {step_no} (example {bad} of the global minibatch of "
                f"{losses.shape[0]}); training stopped before the optimiser step, no checkpoint was written "
                "for this step"
            )
        divergence, rho = self._robust_settings()
        weights, member, selected = solve_step_weights(losses, divergence, rho)
        record: dict[str, Any] = {
            "step": step_no,
            "n": int(losses.shape[0]),
            **weight_statistics(weights, selected),
        }
        if member is not None:
            record["member"] = member
            record["member_counts"] = np.bincount(np.argmin(losses, axis=1), minlength=losses.shape[1]).tolist()
        self.robust_history.append(record)
        metrics = self._metrics["train"]
        for key, name in _METRIC_NAMES:
            metrics[name].append(record[key])
        if member is not None:
            metrics["edpo/member"].append(float(member))
        step = RobustStep(losses=selected, weights=weights, member=member, offset=offset, record=record)
        self.last_robust_step = step
        return step

    def _microbatch_weights(self, local_losses: torch.Tensor) -> tuple[torch.Tensor, int | None, float]:
        """Weights of the current micro-batch, the e-DPO member (or None) and the loss scale ``W * G``.

        The micro-batch loss to back-propagate is ``scale * sum_i w_i l_i`` (see the module docstring).
        """
        if not self.model.training:
            raise RuntimeError("robust weights are for training only; evaluation takes the uniform mean loss")
        world = self.accelerator.num_processes
        if self._robust_queue:
            weights, member, accumulation = self._robust_queue.popleft()
            if weights.shape[0] != local_losses.shape[0]:
                raise RuntimeError(
                    f"robust pre-pass saw {weights.shape[0]} examples in this micro-batch, the backward pass "
                    f"{local_losses.shape[0]}; the micro-batches changed between the two passes"
                )
            return weights.to(local_losses.device), member, float(world * accumulation)
        accumulation = int(getattr(self, "current_gradient_accumulation_steps", 1))
        if accumulation != 1:
            raise RuntimeError(
                "robust weights for an accumulated minibatch are computed in get_batch_samples; "
                "training_step was called outside the Trainer loop with gradient accumulation"
            )
        step = self._solve_and_record(local_losses.detach())
        return (
            step.local_weights(local_losses.shape[0], local_losses.device),
            step.member,
            float(world),
        )

    # ------------------------------------------------------------------ safety
    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = torch.tensor(0.0 if bool(torch.isfinite(loss).all()) else 1.0, device=loss.device)
        if self.accelerator.num_processes > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item() > 0:
            raise NonFiniteError(
                f"non-finite training loss ({loss.item()!r} on this rank) at optimiser step "
                f"{self.state.global_step + 1}; training stopped before the optimiser step, no checkpoint "
                "was written for this step"
            )
        return loss

    def _raise_if_nonfinite_parameters(self) -> None:
        raise_if_nonfinite_parameters(self.model, f"checkpoint at optimiser step {self.state.global_step}")

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial):
        self._raise_if_nonfinite_parameters()
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder = os.path.join(self._get_output_dir(trial=trial), name)
            self._write_robust_state(folder)
        super()._save_checkpoint(model, trial)

    def _write_robust_state(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        averaging = {"mode": "none", "count": 0}
        if self._averager is not None:
            self._averager.save(folder)
            averaging = {"mode": self._averager.mode, "count": self._averager.count}
        atomic_write_json(
            os.path.join(folder, ROBUST_STATE_FILE),
            {"history": self.robust_history, "averaging": averaging},
            indent=1,
        )

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._read_robust_state(resume_from_checkpoint)

    def _read_robust_state(self, folder: str) -> None:
        path = os.path.join(folder, ROBUST_STATE_FILE)
        state: dict[str, Any] = {"history": [], "averaging": {"mode": "none", "count": 0}}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                state = json.load(fh)
        self.robust_history = list(state.get("history", []))
        if self._averager is not None:
            saved_mode = state.get("averaging", {}).get("mode", "none")
            if saved_mode != self._averager.mode:
                raise ValueError(
                    f"{path}: checkpoint was written with average_iterates={saved_mode!r}, "
                    f"this trainer uses {self._averager.mode!r}"
                )
            self._averager.load(folder, self.model, int(state["averaging"]["count"]))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, *args, **kwargs):
        """``Trainer.evaluate`` with the random-number state restored afterwards: iterating the
        eval loader draws a seed from the global generator, and a loss that samples (DR-DPO's
        ``ref_samples`` forward KL) draws more, so without this a validation set would change the
        random numbers training draws after it, hence its results."""
        device = self.accelerator.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return super().evaluate(*args, **kwargs)

    # ------------------------------------------------------------------ training entry point
    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        self._robust_queue.clear()
        self.robust_history = []
        self.last_robust_step = None
        if self._averager is not None:
            self._averager.reset()
        output = super().train(
            resume_from_checkpoint=resume_from_checkpoint,
            trial=trial,
            ignore_keys_for_eval=ignore_keys_for_eval,
            **kwargs,
        )
        if self._averager is not None and self._averager.count > 0:
            self._averager.copy_to(self.model)
        return output
