"""DR-PPO: KL-regularised PPO against a reward model with worst-case sample weights.

DR paper §5.2 / docs/design.md §1.3.  Each update samples a rollout batch of ``n`` responses, scores
them with the reward model and forms the KL-regularised return of every sample,

    R_i = s_i - beta * sum_t kl_{i,t}      (kl_{i,t} ~ log pi(y_t) / pi_ref(y_t), trl's k1/k3),

and the robust weights ``q* = argmin_{q in simplex, D(q, 1/n) <= rho} sum_i q_i R_i`` over the
whole rollout batch (all data-parallel ranks; ``core.dro`` on ``-R``).  Two variants:

* ``vA`` ("scaled rewards/advantages"): the GAE advantages of sample ``i`` (computed by PPO's
  value function, before whitening) are multiplied by ``n q_i``; the value targets are not.
* ``vB`` ("scaled loss"): every token term of the clipped policy loss of sample ``i`` is
  multiplied by ``n q_i``; the value loss is not.

The clipped surrogate is positively homogeneous in the advantage, so scaling the *whitened*
advantages would be exactly vB; vA therefore scales them before trl's whitening.  Uniform
weights give ``n q_i = 1`` exactly, so both variants then reproduce plain PPO bit for bit.

trl 1.12's ``PPOTrainer.train`` is a single loop with no hook (trl 1.13 removed PPO), so
``DRPPOTrainer`` subclasses it only for its set-up (accelerator, policy+value wrapper, optimiser
and scheduler, prompt dataloader, callbacks, seeding) and runs the loop below, built from trl's
pieces (generation, log-prob, reward and masking/whitening helpers).  With ``robust_version =
"none"`` it performs the same computation as trl's loop and consumes random numbers in the same
order (``tests/test_trainers_ppo.py`` checks the parameters against trl's).  One deliberate
difference: an optimiser step is taken after each minibatch (``batch / num_mini_batches``
rollouts), accumulated over its micro-batches, whereas trl steps every
``gradient_accumulation_steps`` micro-batches (and on every micro-batch of the last batch of a
data pass, through accelerate's end-of-dataloader sync); the two agree whenever
``gradient_accumulation_steps == 1``.

Added to trl's loop: checkpoints (policy, value model, optimiser, scheduler, RNG and data-stream
state, written atomically) and ``train(resume_from_checkpoint=...)`` resuming to the same final
weights; a non-finite return, loss or gradient norm raises :class:`core.trainers.guards.NonFiniteError` before any
optimiser step or checkpoint of that update (and non-finite parameters are never checkpointed nor
saved: ``save_model`` refuses them); per-update logs
(KL, rewards, losses, robust-weight statistics) go
through ``Trainer.log`` to the callbacks -- for MLflow pass ``run.callback()`` of
``core.tracking.mlflow_run`` (a no-op without a tracking URI).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import warnings
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate.utils import is_peft_model
from datasets import Dataset
from safetensors.torch import load_model, save_model
from transformers import GenerationConfig, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.utils import selective_log_softmax

from core.atomic import atomic_directory, atomic_write_json, staging_directory
from core.trainers.guards import (
    NonFiniteError,
    gradient_norm,
    nonfinite_gradients,
    raise_if_nonfinite_parameters,
    refuse_partitioned_gradients,
)
from core.trainers.ppo_utils import (
    KL_ESTIMATORS,
    PromptStream,
    RobustWeights,
    capture_torch_rng,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    kl_estimate,
    numpy_rng_from_tensors,
    numpy_rng_to_tensors,
    restore_torch_rng,
    robust_weights,
    shaped_token_rewards,
)
from core.trainers.robust import RobustBallArguments
from core.vocab import PPO_VERSIONS

with warnings.catch_warnings():  # trl 1.12 warns on the first import of trl.experimental
    warnings.filterwarnings("ignore", message=".*trl.experimental.*")
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo.ppo_trainer import (
        INVALID_LOGPROB,
        batch_generation,
        forward,
        masked_mean,
        masked_whiten,
        truncate_response,
    )
    from trl.experimental.utils import first_true_indices, get_reward

__all__ = ["DRPPOConfig", "DRPPOTrainer", "tokenize_prompts"]

_RUN_KEYS = (
    "seed",
    "batch_size",
    "local_batch_size",
    "num_mini_batches",
    "num_ppo_epochs",
    "per_device_train_batch_size",
    "response_length",
    "num_total_batches",
    "robust_version",
    "divergence",
    "rho",
)


@dataclass
class DRPPOConfig(RobustBallArguments, PPOConfig):
    r"""trl 1.12's ``PPOConfig`` plus the DR-PPO fields (DR paper §5.2; the ball:
    core.trainers.robust.RobustBallArguments).

    Parameters:
        robust_version (`str`, defaults to `"none"`): one of `core.vocab.PPO_VERSIONS`: `"none"`
            (plain PPO), `"vA"` (advantages of sample i scaled by n q_i) or `"vB"` (policy loss of
            sample i scaled by n q_i).
        divergence (`str`, defaults to `"none"`): ball around the uniform weights, one of
            `core.vocab.DIVERGENCES`.
        rho (`float`, defaults to `0.0`): its radius (`alpha` in (0, 1] for `cvar`); 0 gives
            uniform weights, i.e. plain PPO.
        num_sample_generations (`int`, defaults to `0`): trl's debugging sample tables are not
            produced by this trainer; must stay 0.
    """

    robust_version: str = field(
        default="none",
        metadata={"help": "DR-PPO variant: 'none', 'vA' (scaled advantages) or 'vB' (scaled policy loss)."},
    )
    num_sample_generations: int = field(default=0, metadata={"help": "Not supported by DRPPOTrainer; must be 0."})

    def __post_init__(self) -> None:
        super().__post_init__()  # the ball's checks, then trl's
        if self.robust_version not in PPO_VERSIONS:
            raise ValueError(
                f"DRPPOConfig.robust_version must be one of {list(PPO_VERSIONS)}, got {self.robust_version!r}"
            )
        if self.robust_version == "none" and self.divergence != "none" and self.rho > 0:
            raise ValueError(
                f"DRPPOConfig: divergence={self.divergence!r} with rho={self.rho} has no effect when "
                "robust_version='none'; set robust_version to 'vA' or 'vB', or divergence to 'none'"
            )
        if self.num_sample_generations != 0:
            raise ValueError(
                "DRPPOConfig.num_sample_generations must be 0: DRPPOTrainer does not print sample tables "
                "(evaluate the saved policy with core.eval instead)"
            )
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(
                f"DRPPOConfig.kl_estimator must be one of {list(KL_ESTIMATORS)}, got {self.kl_estimator!r}"
            )


def tokenize_prompts(
    dataset: Dataset,
    tokenizer: Any,
    prompt_column: str = "prompt",
    max_prompt_length: int | None = None,
    add_special_tokens: bool = True,
) -> Dataset:
    """Map a prompt column to the ``input_ids`` column that PPO's collator pads.

    A prompt is a string (tokenised with the tokenizer's special tokens, e.g. BOS, unless
    ``add_special_tokens=False``) or a list of chat messages ``{role, content}`` (rendered with the
    tokenizer's chat template and ``add_generation_prompt=True``; the template supplies its own
    special tokens).  ``max_prompt_length`` keeps the last tokens (those next to the response).
    """
    if prompt_column not in dataset.column_names:
        raise ValueError(f"prompt dataset has no column {prompt_column!r}; columns are {dataset.column_names}")

    def encode(row: dict[str, Any], index: int) -> dict[str, list[int]]:
        prompt = row[prompt_column]
        if isinstance(prompt, str):
            text, specials = prompt, add_special_tokens
        elif isinstance(prompt, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in prompt):
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            specials = False
        else:
            raise ValueError(
                f"prompt dataset row {index}, column {prompt_column!r}: expected a string or a list of "
                f"{{role, content}} messages, got {type(prompt).__name__}"
            )
        ids = tokenizer(text, add_special_tokens=specials)["input_ids"]
        if max_prompt_length is not None:
            ids = ids[-max_prompt_length:]
        if not ids:
            raise ValueError(f"prompt dataset row {index}, column {prompt_column!r}: the prompt has no tokens")
        return {"input_ids": ids}

    return dataset.map(encode, with_indices=True, remove_columns=dataset.column_names)


@dataclass
class _Rollout:
    """One rollout batch (this rank's share) and everything PPO derives from it."""

    context_length: int
    query_responses: torch.Tensor
    responses: torch.Tensor
    postprocessed: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor
    sequence_lengths: torch.Tensor
    padding_mask: torch.Tensor | None = None
    padding_mask_p1: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    non_score_reward: torch.Tensor | None = None
    kl_returns: torch.Tensor | None = None
    weights: RobustWeights | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None


class DRPPOTrainer(PPOTrainer):
    """PPO / DR-PPO trainer with trl 1.12's ``PPOTrainer`` constructor and API.

    ``train_dataset`` holds tokenised prompts (an ``input_ids`` column, see
    :func:`tokenize_prompts`); the tokenizer must pad on the left.  ``model`` is the policy,
    ``ref_model`` the frozen reference (``None`` with a PEFT policy), ``reward_model`` and
    ``value_model`` sequence classifiers with one output (trl's ``get_reward`` protocol: a
    ``base_model_prefix`` backbone and a ``score`` head).  Every update is logged through
    ``Trainer.log`` (``state.log_history`` and the ``callbacks``): ``objective/kl``,
    ``objective/scores`` (mean reward), ``objective/rlhf_reward`` (mean KL-regularised return),
    ``objective/robust_return`` (``sum q_i R_i``), ``robust/max_weight``, ``robust/ess``
    (``1 / sum q^2``), ``robust/frac_zero_weights`` (``core.dro.weight_statistics``),
    ``loss/policy_avg``, ``loss/value_avg``, ...
    """

    _tag_names = ["trl", "ppo", "dr-ppo"]
    _name = "DR-PPO"

    def __init__(
        self,
        args: DRPPOConfig,
        processing_class: Any,
        model: torch.nn.Module,
        ref_model: torch.nn.Module | None,
        reward_model: torch.nn.Module,
        train_dataset: Dataset,
        value_model: torch.nn.Module,
        data_collator: Any = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        callbacks: list[TrainerCallback] | None = None,
        peft_config: Any = None,
    ) -> None:
        if not isinstance(args, DRPPOConfig):
            raise ValueError(f"DRPPOTrainer needs a DRPPOConfig, got {type(args).__name__}")
        _check_inputs(train_dataset, processing_class)
        super().__init__(
            args=args,
            processing_class=processing_class,
            model=model,
            ref_model=ref_model,
            reward_model=reward_model,
            train_dataset=train_dataset,
            value_model=value_model,
            data_collator=data_collator,
            eval_dataset=eval_dataset,
            optimizers=optimizers,
            callbacks=callbacks,
            peft_config=peft_config,
        )
        refuse_partitioned_gradients(self)  # its gradient check (_stop_if_gradient_not_finite) reads .grad
        self._micro_size = min(args.per_device_train_batch_size, args.local_mini_batch_size)
        if args.local_mini_batch_size % self._micro_size:
            raise ValueError(
                f"DRPPOConfig: the per-rank minibatch ({args.local_mini_batch_size} rollouts) must be a multiple "
                f"of per_device_train_batch_size ({args.per_device_train_batch_size})"
            )
        self._micro_per_minibatch = args.local_mini_batch_size // self._micro_size
        if len(self.dataloader) == 0:
            raise ValueError(
                f"train_dataset has {len(train_dataset)} prompts, fewer than one rollout batch "
                f"(per_device_train_batch_size * gradient_accumulation_steps = {args.local_batch_size})"
            )
        self._np_rng = np.random.RandomState(self.local_seed)
        self._prompts = PromptStream(self.dataloader)
        self._generation_kwargs = {
            "max_new_tokens": args.response_length,
            "temperature": args.temperature + 1e-7,
            "top_k": 0.0,
            "top_p": 1.0,
            "do_sample": True,
        }
        self._last_checkpoint: str | None = None
        #: a core.trainers.throughput.ThroughputMeter (among the callbacks) counting each rollout, or None
        self.throughput: Any = None

    # ------------------------------------------------------------------ public API
    def train(self, resume_from_checkpoint: str | bool | None = None) -> dict[str, float]:
        """Run ``num_total_batches`` PPO updates; returns the metrics of the last update.

        ``resume_from_checkpoint``: a checkpoint directory, or ``True`` for the newest
        ``checkpoint-*`` under ``output_dir``; training continues from its update.
        """
        args = self.args
        # The optimiser step is per minibatch: accelerate's backward divides by this count.
        self.accelerator.gradient_accumulation_steps = self._micro_per_minibatch
        self.state.global_step = 0
        self.state.episode = 0
        self.state.max_steps = args.num_total_batches
        self.state.num_train_epochs = args.total_episodes / self.train_dataset_len
        self.state.compute_steps(args, self.state.max_steps)
        if resume_from_checkpoint:
            self._load_checkpoint(self._resolve_checkpoint(resume_from_checkpoint))
        self._enable_gradient_checkpointing()
        self.control = self.callback_handler.on_train_begin(args, self.state, self.control)
        self.model.train()
        metrics: dict[str, float] = {}
        for update in range(self.state.global_step + 1, args.num_total_batches + 1):
            metrics = self._update(update)
            self.control = self.callback_handler.on_step_end(args, self.state, self.control)
            if self.control.should_save:
                self._write_checkpoint()
                self.control = self.callback_handler.on_save(args, self.state, self.control)
            if self.control.should_training_stop:
                break
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        return metrics

    def _enable_gradient_checkpointing(self) -> None:
        """``gradient_checkpointing: true`` (as Trainer.train does, which this loop replaces): the policy's
        and the value model's activations are recomputed in the backward pass instead of kept; the
        rollouts are sampled in eval mode (:meth:`_rollout`), where generation keeps its KV cache."""
        if not self.args.gradient_checkpointing:
            return
        kwargs = self.args.gradient_checkpointing_kwargs or {"use_reentrant": False}
        wrapper = self.accelerator.unwrap_model(self.model)
        for module in (wrapper.policy, wrapper.value_model):
            module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            if is_peft_model(module):
                module.enable_input_require_grads()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the policy (HF folder, safetensors) and the tokenizer to ``output_dir``.

        ``core.atomic.atomic_directory(..., merge=True)``: the files are written to a staging folder
        and moved into ``output_dir`` one by one with ``os.replace`` (``config.json`` last), so no
        file there is ever half-written and existing checkpoints are kept. A policy with a nan/inf
        tensor is refused before anything is written (``core.trainers.guards.NonFiniteError``).
        """
        output_dir = output_dir or self.args.output_dir
        # every rank checks (the weights are the same on all), so all raise together
        raise_if_nonfinite_parameters(self.accelerator.unwrap_model(self.model).policy, "the DR-PPO policy")
        if self.accelerator.is_main_process:
            policy = self.accelerator.unwrap_model(self.model).policy
            with atomic_directory(output_dir, merge=True, last=("config.json",)) as tmp:
                policy.save_pretrained(tmp, safe_serialization=True)
                if self.processing_class is not None:
                    self.processing_class.save_pretrained(tmp)
        self.accelerator.wait_for_everyone()

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """trl's checkpoint hook, redirected to the resumable DR-PPO checkpoint."""
        self._write_checkpoint()

    # ------------------------------------------------------------------ one update
    def _update(self, update: int) -> dict[str, float]:
        args = self.args
        self.state.episode += args.batch_size
        batch = next(self._prompts)
        meter = self.throughput
        with meter.phase("rollout") if meter is not None else nullcontext():
            rollout = self._rollout(batch["input_ids"].to(self.accelerator.device))
        if meter is not None:
            pad = self.processing_class.pad_token_id
            meter.count(rollout.query_responses.shape[0], int((rollout.query_responses != pad).sum()))
            if self.stop_token_id is not None:  # responses that end at their stop token before the cap
                meter.note("stopped_share", (rollout.responses == self.stop_token_id).any(1).float().mean().item())
        with meter.phase("optimise") if meter is not None else nullcontext():
            self._shape(rollout, update)
            stats = self._optimise(rollout, update)
        metrics = self._metrics(rollout, stats)
        self.state.global_step += 1
        self.state.epoch = self.state.episode / self.train_dataset_len
        self.log(metrics)
        self.lr_scheduler.step()
        return metrics

    @torch.no_grad()
    def _rollout(self, queries: torch.Tensor) -> _Rollout:
        """Sample responses from the policy and score them (log-probs, ref log-probs, values, rewards)."""
        args, pad = self.args, self.processing_class.pad_token_id
        ctx = queries.shape[1]
        chunk = args.local_rollout_forward_batch_size
        with unwrap_model_for_generation(
            self.model,
            self.accelerator,
            gather_deepspeed3_params=args.ds3_gather_for_generation,
            generation_kwargs=self._generation_kwargs,
        ) as unwrapped:
            # with gradient checkpointing a model in train mode generates without its KV cache
            # (transformers); dropout is off in PPO, so eval mode samples the same tokens
            training = unwrapped.policy.training
            if args.gradient_checkpointing:
                unwrapped.policy.eval()
            try:
                query_responses, sampling_logits = batch_generation(
                    unwrapped.policy, queries, chunk, pad, GenerationConfig(**self._generation_kwargs)
                )
            finally:
                unwrapped.policy.train(training)
        value_model = self.accelerator.unwrap_model(self.model).value_model
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        for start in range(0, queries.shape[0], chunk):
            query = queries[start : start + chunk]
            query_response = query_responses[start : start + chunk]
            response = query_response[:, ctx:]
            parts["logprobs"].append(selective_log_softmax(sampling_logits[start : start + chunk], response))
            parts["ref_logprobs"].append(self._ref_logprobs(query_response, response, ctx))
            post = response
            if self.stop_token_id is not None:
                post = truncate_response(self.stop_token_id, pad, response)
            value = get_reward(value_model, query_response, pad, ctx)[0]
            parts["values"].append(value[:, ctx - 1 : -1].squeeze(-1))
            parts["scores"].append(get_reward(self.reward_model, torch.cat((query, post), 1), pad, ctx)[1])
            parts["sequence_lengths"].append(first_true_indices(post == pad) - 1)
            parts["responses"].append(response)
            parts["postprocessed"].append(post)
        cat = {k: torch.cat(v, 0) for k, v in parts.items()}
        return _Rollout(context_length=ctx, query_responses=query_responses, **cat)

    def _ref_logprobs(self, query_response: torch.Tensor, response: torch.Tensor, ctx: int) -> torch.Tensor:
        pad = self.processing_class.pad_token_id
        if self.ref_model is None:
            with self.null_ref_context():
                out = forward(self.accelerator.unwrap_model(self.model).policy, query_response, pad)
        else:
            out = forward(self.ref_model, query_response, pad)
        logits = out.logits[:, ctx - 1 : -1] / (self.args.temperature + 1e-7)
        return selective_log_softmax(logits, response)

    @torch.no_grad()
    def _shape(self, r: _Rollout, update: int) -> None:
        """Masks, KL-shaped rewards, robust weights, GAE advantages and value targets."""
        args = self.args
        eos = self.processing_class.eos_token_id
        if args.missing_eos_penalty is not None:
            r.scores[~torch.any(r.postprocessed == eos, dim=-1)] -= args.missing_eos_penalty
        positions = torch.arange(r.responses.shape[1], device=r.responses.device).repeat(r.responses.shape[0], 1)
        r.padding_mask = positions > r.sequence_lengths.unsqueeze(1)
        r.padding_mask_p1 = positions > (r.sequence_lengths + 1).unsqueeze(1)
        r.logprobs = torch.masked_fill(r.logprobs, r.padding_mask, INVALID_LOGPROB)
        r.ref_logprobs = torch.masked_fill(r.ref_logprobs, r.padding_mask, INVALID_LOGPROB)
        r.values = torch.masked_fill(r.values, r.padding_mask_p1, 0)

        r.kl = kl_estimate(r.logprobs, r.ref_logprobs, args.kl_estimator)
        rewards, r.non_score_reward = shaped_token_rewards(r.scores, r.kl, args.kl_coef, r.sequence_lengths)
        r.kl_returns = rewards.sum(1)
        finite = torch.isfinite(r.kl_returns).all().float().reshape(1)
        if self.accelerator.gather(finite).min().item() < 1:
            raise NonFiniteError(
                f"DR-PPO update {update}: non-finite KL-regularised returns (reward-model scores "
                f"{r.scores.tolist()}, summed KL {r.kl.sum(1).tolist()}); stopped before any optimiser step "
                f"of this update, no checkpoint written for it (last checkpoint: {self._last_checkpoint})"
            )
        gather = self.accelerator.gather if self.accelerator.num_processes > 1 else None
        r.weights = robust_weights(r.kl_returns, args.divergence, args.rho, gather=gather)

        if args.whiten_rewards:
            rewards = masked_whiten(rewards, mask=~r.padding_mask_p1, shift_mean=False)
            rewards = torch.masked_fill(rewards, r.padding_mask_p1, 0)
        advantages, r.returns = gae(rewards, r.values, args.gamma, args.lam)
        if args.robust_version == "vA":
            advantages = advantages * r.weights.scales.unsqueeze(1)
        advantages = masked_whiten(advantages, ~r.padding_mask)
        r.advantages = torch.masked_fill(advantages, r.padding_mask, 0)

    def _optimise(self, r: _Rollout, update: int) -> dict[str, torch.Tensor]:
        """``num_ppo_epochs`` shuffled passes; one optimiser step per minibatch."""
        args = self.args
        stats: dict[str, list[torch.Tensor]] = defaultdict(list)
        for epoch in range(args.num_ppo_epochs):
            order = self._np_rng.permutation(args.local_batch_size)
            for mb_index, mb_start in enumerate(range(0, args.local_batch_size, args.local_mini_batch_size)):
                minibatch = order[mb_start : mb_start + args.local_mini_batch_size]
                for k in range(self._micro_per_minibatch):
                    idx = minibatch[k * self._micro_size : (k + 1) * self._micro_size]
                    last = k == self._micro_per_minibatch - 1
                    with nullcontext() if last else self.accelerator.no_sync(self.model):
                        loss, micro = self._micro_batch_loss(r, idx)
                        self._stop_if_not_finite(loss, micro, update, epoch, mb_index)
                        self.accelerator.backward(loss)
                    for key, value in micro.items():
                        stats[key].append(value.detach())
                self._stop_if_gradient_not_finite(update, epoch, mb_index)
                self.optimizer.step()
                self.optimizer.zero_grad()
        return {key: torch.stack(values).mean() for key, values in stats.items()}

    def _micro_batch_loss(self, r: _Rollout, idx: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        args, ctx = self.args, r.context_length
        output, value_logits = forward(self.model, r.query_responses[idx], self.processing_class.pad_token_id)
        logits = output.logits[:, ctx - 1 : -1] / (args.temperature + 1e-7)
        new_logprobs = torch.masked_fill(
            selective_log_softmax(logits, r.responses[idx]), r.padding_mask[idx], INVALID_LOGPROB
        )
        vpred = torch.masked_fill(value_logits[:, ctx - 1 : -1].squeeze(-1), r.padding_mask_p1[idx], 0)
        value_loss, value_clipfrac = clipped_value_loss(
            vpred, r.values[idx], r.returns[idx], ~r.padding_mask_p1[idx], args.cliprange_value
        )
        scales = r.weights.scales[idx] if args.robust_version == "vB" else None
        policy = clipped_policy_loss(
            new_logprobs,
            r.logprobs[idx],
            r.advantages[idx],
            ~r.padding_mask[idx],
            args.cliprange,
            scales,
        )
        loss = policy.loss + args.vf_coef * value_loss
        with torch.no_grad():
            probs = torch.softmax(logits, dim=-1)
            entropy = torch.logsumexp(logits, dim=-1) - torch.sum(probs * logits, dim=-1)
            micro = {
                "loss/policy_avg": policy.loss,
                "loss/value_avg": value_loss,
                "loss/total_avg": loss,
                "policy/approxkl_avg": 0.5 * (policy.log_ratio**2).mean(),
                "policy/clipfrac_avg": policy.clipfrac,
                "policy/entropy_avg": masked_mean(entropy, ~r.padding_mask[idx]),
                "val/clipfrac_avg": value_clipfrac,
                "val/ratio": policy.ratio.mean(),
            }
        return loss, micro

    def _stop_if_not_finite(
        self,
        loss: torch.Tensor,
        micro: dict[str, torch.Tensor],
        update: int,
        epoch: int,
        minibatch: int,
    ) -> None:
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.accelerator.gather(finite).min().item() < 1:
            raise NonFiniteError(
                f"DR-PPO update {update} (PPO epoch {epoch}, minibatch {minibatch}): non-finite loss "
                f"{loss.item()} (policy {micro['loss/policy_avg'].item()}, value {micro['loss/value_avg'].item()}); "
                f"stopped before the optimiser step, no checkpoint written for this update "
                f"(last checkpoint: {self._last_checkpoint})"
            )

    def _stop_if_gradient_not_finite(self, update: int, epoch: int, minibatch: int) -> None:
        """A finite loss can still give nan/inf gradients: check their norm before every optimiser step
        (core.trainers.guards; the gradients are already averaged over the ranks, the gather keeps
        every rank raising together)."""
        norm = gradient_norm(self.model)
        if norm is None:
            return
        finite = torch.isfinite(norm).float().reshape(1)
        if self.accelerator.gather(finite).min().item() < 1:
            bad = nonfinite_gradients(self.model)
            raise NonFiniteError(
                f"DR-PPO update {update} (PPO epoch {epoch}, minibatch {minibatch}): non-finite gradient norm "
                f"{norm.item()} (parameters with nan/inf gradients, first 5: {bad[:5]}); stopped before the "
                f"optimiser step, no checkpoint written for this update (last checkpoint: {self._last_checkpoint})"
            )

    @torch.no_grad()
    def _metrics(self, r: _Rollout, stats: dict[str, torch.Tensor]) -> dict[str, float]:
        acc = self.accelerator

        def mean(t: torch.Tensor) -> float:
            return acc.gather_for_metrics(t.reshape(1)).mean().item()

        metrics = {
            "objective/kl": mean(r.kl.sum(1).mean()),
            "objective/entropy": mean(((-r.logprobs) * (~r.padding_mask).float()).sum(1).mean()),
            "objective/non_score_reward": mean(r.non_score_reward.sum(1).mean()),
            "objective/rlhf_reward": mean(r.kl_returns.mean()),
            "objective/scores": mean(r.scores.mean()),
            "objective/robust_return": acc.gather((r.weights.local * r.kl_returns.double()).sum().reshape(1))
            .sum()
            .item(),
        }
        metrics.update({f"robust/{k}": v for k, v in r.weights.statistics().items()})
        metrics.update({key: mean(value) for key, value in stats.items()})
        metrics["val/num_eos_tokens"] = float((r.responses == self.processing_class.eos_token_id).sum().item())
        metrics["lr"] = self.lr_scheduler.get_last_lr()[0]
        metrics["episode"] = self.state.episode
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def _write_checkpoint(self) -> None:
        """Write ``output_dir/checkpoint-<update>`` atomically (``core.atomic.atomic_directory``: every
        rank writes into its staging folder, which the main process then moves into place)."""
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise NotImplementedError("DRPPOTrainer checkpoints support single-process and DDP runs only")
        acc = self.accelerator
        bad = [n for n, p in acc.unwrap_model(self.model).named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteError(
                f"DR-PPO update {self.state.global_step}: non-finite parameters {bad[:5]}; no checkpoint written "
                f"(last checkpoint: {self._last_checkpoint})"
            )
        final = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        rng = {
            "global": capture_torch_rng(),
            "numpy": numpy_rng_to_tensors(self._np_rng),
            "stream": {
                "consumed": torch.tensor(self._prompts.consumed),
                **_flat("pass", self._prompts.pass_rng),
            },
        }
        # the main process owns the staging folder; the other ranks write into it once it exists
        folder = atomic_directory(final) if acc.is_main_process else nullcontext(staging_directory(final))
        with folder as tmp:
            acc.wait_for_everyone()
            torch.save(rng, os.path.join(tmp, f"rng_state_{acc.process_index}.pt"))
            if acc.is_main_process:
                unwrapped = acc.unwrap_model(self.model)
                save_model(unwrapped.policy, os.path.join(tmp, "policy.safetensors"))
                save_model(unwrapped.value_model, os.path.join(tmp, "value_model.safetensors"))
                torch.save(self.optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
                torch.save(self.lr_scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
                self.state.save_to_json(os.path.join(tmp, "trainer_state.json"))
                atomic_write_json(
                    os.path.join(tmp, "dr_ppo_run.json"),
                    self._run_signature(),
                    indent=2,
                    sort_keys=True,
                )
            acc.wait_for_everyone()
        if acc.is_main_process:
            self._rotate_checkpoints()
        acc.wait_for_everyone()
        self._last_checkpoint = final

    def _rotate_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        if not limit:
            return
        found = sorted(_checkpoints(self.args.output_dir), key=lambda p: p[0])
        for _, path in found[: max(0, len(found) - limit)]:
            shutil.rmtree(path, ignore_errors=True)

    def _resolve_checkpoint(self, resume: str | bool) -> str:
        if resume is True:
            found = _checkpoints(self.args.output_dir)
            if not found:
                raise ValueError(
                    f"resume_from_checkpoint=True but {self.args.output_dir} has no checkpoint-* directory"
                )
            return max(found)[1]
        path = str(resume)
        if not os.path.isfile(os.path.join(path, "dr_ppo_run.json")):
            raise ValueError(f"resume_from_checkpoint={path!r} is not a DR-PPO checkpoint (no dr_ppo_run.json)")
        return path

    def _run_signature(self) -> dict[str, Any]:
        return {key: getattr(self.args, key) for key in _RUN_KEYS} | {"world_size": self.accelerator.num_processes}

    def _load_checkpoint(self, path: str) -> None:
        """Restore weights, optimiser, scheduler, trainer state, RNG and prompt stream from ``path``."""
        with open(os.path.join(path, "dr_ppo_run.json"), encoding="utf-8") as fh:
            saved = json.load(fh)
        current = self._run_signature()
        diff = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
        if diff:
            raise ValueError(
                f"checkpoint {path} was written with different settings (saved, now): {diff}; "
                "resuming would not continue the same run"
            )
        acc = self.accelerator
        rng_file = os.path.join(path, f"rng_state_{acc.process_index}.pt")
        if not os.path.isfile(rng_file):
            raise ValueError(f"checkpoint {path} has no {os.path.basename(rng_file)}")
        unwrapped = acc.unwrap_model(self.model)
        load_model(unwrapped.policy, os.path.join(path, "policy.safetensors"))
        load_model(unwrapped.value_model, os.path.join(path, "value_model.safetensors"))
        self.optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True))
        self.lr_scheduler.load_state_dict(torch.load(os.path.join(path, "scheduler.pt"), weights_only=True))
        saved_state = type(self.state).load_from_json(os.path.join(path, "trainer_state.json"))
        for key in ("global_step", "episode", "epoch", "log_history", "total_flos"):
            setattr(self.state, key, getattr(saved_state, key))
        rng = torch.load(rng_file, weights_only=True)
        stream = rng["stream"]
        self._prompts.restore({"consumed": int(stream["consumed"]), "pass_rng": _unflat("pass", stream)})
        self._np_rng = numpy_rng_from_tensors(rng["numpy"])
        restore_torch_rng(rng["global"])
        self._last_checkpoint = path


# ---------------------------------------------------------------------- helpers
def _check_inputs(train_dataset: Any, tokenizer: Any) -> None:
    if train_dataset is None:
        raise ValueError("DRPPOTrainer: train_dataset is required")
    columns = getattr(train_dataset, "column_names", None)
    if columns is not None and "input_ids" not in columns:
        raise ValueError(
            f"DRPPOTrainer: train_dataset needs an 'input_ids' column of tokenised prompts (see "
            f"core.trainers.ppo.tokenize_prompts); it has {columns}"
        )
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("DRPPOTrainer: the tokenizer has no pad token; set processing_class.pad_token")
    if getattr(tokenizer, "padding_side", "left") != "left":
        raise ValueError(
            "DRPPOTrainer: responses are generated right after the prompts, so the tokenizer must pad on the left "
            f"(processing_class.padding_side = 'left'; it is {tokenizer.padding_side!r})"
        )


def _checkpoints(output_dir: str) -> list[tuple[int, str]]:
    found = []
    for path in glob.glob(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-*")):
        match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", os.path.basename(path))
        if match and os.path.isfile(os.path.join(path, "dr_ppo_run.json")):
            found.append((int(match.group(1)), path))
    return found


def _flat(prefix: str, state: dict[str, Any] | None) -> dict[str, Any]:
    return {} if state is None else {f"{prefix}/{k}": v for k, v in state.items()}


def _unflat(prefix: str, flat: dict[str, Any]) -> dict[str, Any] | None:
    out = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{prefix}/")}
    return out or None
