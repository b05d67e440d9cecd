"""The DPO family on trl 1.12's ``DPOTrainer``: DR weights on every loss, distillation, pessimism, ensembles.

Implicit reward ``h = beta log(pi/pi_ref)``, ``Delta h = h(x,y+) - h(x,y-)`` (docs/design.md §1.3).
``loss_type`` (one of ``core.vocab.LOSS_TYPES``):

* ``dpo`` DPO ``-log sigma(Delta h)`` (Rafailov et al. eq. 7; trl calls it ``sigmoid``) and ``ipo``
  ``(Delta avg-logratio - 1/(2 tau))^2`` (trl's per-token form, ``tau`` = ``beta``): with DR off
  these run trl's own code path, unchanged.
* ``ddpo`` distillation paper eq. 7: ``(r_tgt(x,y+) - r_tgt(x,y-) - Delta h)^2``.
* ``pdpo`` eq. 13: DPO + ``gamma KL(pi_ref || pi)``.
* ``dpdpo`` eq. 11 with ``S = {r_tgt}``: d-DPO + ``gamma KL(pi_ref || pi)``.
* ``edpo`` eq. 11: ``min_k L_distill(r_k, pi) + gamma KL(pi_ref || pi)``, the min taken over the
  whole optimiser minibatch (paper footnote 5); the member attaining it is logged every step and,
  with the per-member count of examples each member fits best, kept in ``robust_history`` (the
  data of the paper's Figure B.3).

Target rewards are precomputed dataset columns: ``target_chosen`` / ``target_rejected`` (names
configurable) for ``ddpo``/``dpdpo``, and ``target_chosen_0.. target_chosen_{K-1}`` /
``target_rejected_0..`` (one pair per ensemble member) for ``edpo``.  They survive trl's
preprocessing and are collated into ``[n, K]`` float tensors.

Forward KL (``forward_kl_estimator``): ``KL(pi_ref||pi) = E_{y~pi_ref}[-log pi(y|x)] + const``
(``core.losses.forward_kl_estimate``).  ``"dataset"`` averages ``-log pi`` over the pair's two
dataset completions (the paper's finite-sample approximation, exact in expectation when the
preference data were sampled from ``pi_ref``; no extra compute); ``"ref_samples"`` samples
``forward_kl_num_samples`` completions per prompt from ``pi_ref`` at every step (temperature 1, no
top-k/top-p, at most ``forward_kl_max_new_tokens`` tokens) and scores them with the policy (one
extra generation and forward per step).  ``forward_kl_length_normalize`` divides by the
completion length.  ``gamma`` is constant or annealed linearly from ``gamma_start`` (first step)
to ``gamma_end`` (last step), the paper's 1e-4 -> 1e-2.

DR (``divergence``, ``rho``) reweights the per-example preference/distillation loss of every loss
type by ``q*`` over the whole optimiser minibatch (see :mod:`core.trainers.robust`); for ``edpo``
each member gets its own worst-case weights and the member with the smallest robust loss is used.
The forward-KL term is a regulariser and keeps the plain mean.

Evaluation (``eval_dataset``, ``eval_loss``) is never reweighted: the uniform mean of the
per-example losses (e-DPO: the member with the smallest mean over the batch), plus the forward-KL
term for the pessimistic losses.  A validation set may carry the target-reward columns (then
d-/dp-/e-DPO are scored by their distillation loss) or none of them, like the oracle-labelled
validation split: then the distillation term is replaced by the DPO loss ``-log sigma(Delta h)``
of the labelled pair (d-DPO -> DPO, dp-/e-DPO -> p-DPO), since there is no target to distil.
Training data always needs the targets.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate.utils import is_peft_model
from transformers import GenerationConfig
from trl import DPOConfig, DPOTrainer
from trl.data_utils import get_dataset_column_names
from trl.trainer.utils import flush_left, hash_module, selective_log_softmax, use_adapter

from core.losses import (
    distillation_loss,
    dpo_sigmoid_loss,
    ensemble_member,
    forward_kl_estimate,
    ipo_loss,
    weighted_mean,
)
from core.trainers.robust import RobustMinibatchMixin, RobustTrainingArguments, robust_enabled
from core.vocab import (
    DISTILLED_LOSS_TYPES,
    FORWARD_KL_ESTIMATORS,
    GAMMA_SCHEDULES,
    LOSS_TYPES,
    PESSIMISTIC_LOSS_TYPES,
)

__all__ = [
    "DRDPOConfig",
    "DRDPOTrainer",
    "TargetRewardCollator",
    "resolve_target_columns",
    "trl_loss_types",
]

#: The losses of ``LOSS_TYPES`` that trl 1.12's ``DPOTrainer`` implements, under trl's names.
_TRL_NAMES: dict[str, str] = {"dpo": "sigmoid", "ipo": "ipo"}
#: The losses only this trainer implements (always the custom code path).
_OWN_LOSS_TYPES: tuple[str, ...] = tuple(t for t in LOSS_TYPES if t not in _TRL_NAMES)
_TARGET_KEYS = ("target_chosen", "target_rejected")
_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", *_TARGET_KEYS}


def trl_loss_types(loss_types: Sequence[str]) -> list[str]:
    """``loss_type`` in trl's words (trl calls the plain DPO loss ``sigmoid``): the one translation."""
    return [_TRL_NAMES.get(t, t) for t in loss_types]


@dataclass
class DRDPOConfig(RobustTrainingArguments, DPOConfig):
    """trl's ``DPOConfig`` plus DR weights, distillation targets, pessimism and e-DPO settings.

    ``loss_type`` takes the project's words (``core.vocab.LOSS_TYPES``, default ``"dpo"``); with DR
    off and no loss of this trainer's own, other trl loss types (trl's names) run trl's code.
    """

    loss_type: list[str] = field(
        default_factory=lambda: ["dpo"],
        metadata={
            "help": f"One of {', '.join(LOSS_TYPES)} (core.vocab.LOSS_TYPES); with DR off, also trl's other loss types."
        },
    )
    gamma: float = field(default=0.01, metadata={"help": "Forward-KL coefficient when gamma_schedule='constant'."})
    gamma_schedule: str = field(default="constant", metadata={"help": "constant or linear (gamma_start -> gamma_end)."})
    gamma_start: float = field(default=1e-4, metadata={"help": "gamma at the first step of a linear schedule."})
    gamma_end: float = field(default=1e-2, metadata={"help": "gamma at the last step of a linear schedule."})
    forward_kl_estimator: str = field(
        default="dataset",
        metadata={"help": "dataset (the pair's completions) or ref_samples (sampled from pi_ref)."},
    )
    forward_kl_num_samples: int = field(default=1, metadata={"help": "Samples per prompt for ref_samples."})
    forward_kl_max_new_tokens: int = field(default=32, metadata={"help": "Max sampled tokens for ref_samples."})
    forward_kl_length_normalize: bool = field(default=False, metadata={"help": "Per-token -log pi."})
    target_chosen_column: str = field(default="target_chosen", metadata={"help": "Target reward of y+ (edpo: _k)."})
    target_rejected_column: str = field(
        default="target_rejected",
        metadata={"help": "Target reward of y- (edpo: suffix _k per member)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # the DR fields' checks; trl's turns a str loss_type into a list
        if "sigmoid" in self.loss_type:
            raise ValueError(
                f"config field 'loss_type': the plain DPO loss is called 'dpo' (trl's 'sigmoid'), got {self.loss_type}"
            )
        custom = any(t in _OWN_LOSS_TYPES for t in self.loss_type) or robust_enabled(self.divergence, self.rho)
        if custom and (len(self.loss_type) != 1 or self.loss_type[0] not in LOSS_TYPES):
            raise ValueError(
                f"config field 'loss_type': with DR on or a distillation/pessimistic loss, exactly one of "
                f"{list(LOSS_TYPES)} is supported, got {self.loss_type}"
            )
        for name in ("gamma", "gamma_start", "gamma_end"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"config field {name!r}: expected a finite number >= 0, got {value!r}")
        if self.gamma_schedule not in GAMMA_SCHEDULES:
            raise ValueError(
                f"config field 'gamma_schedule': expected one of {list(GAMMA_SCHEDULES)}, got {self.gamma_schedule!r}"
            )
        if self.forward_kl_estimator not in FORWARD_KL_ESTIMATORS:
            raise ValueError(
                f"config field 'forward_kl_estimator': expected one of {list(FORWARD_KL_ESTIMATORS)}, "
                f"got {self.forward_kl_estimator!r}"
            )
        for name in ("forward_kl_num_samples", "forward_kl_max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"config field {name!r}: expected an integer >= 1, got {value!r}")


def resolve_target_columns(
    column_names: Sequence[str],
    loss_type: str,
    chosen_column: str,
    rejected_column: str,
    dataset_name: str = "train",
) -> tuple[list[str], list[str]]:
    """The dataset columns holding target rewards for ``loss_type`` (chosen list, rejected list).

    ``ddpo``/``dpdpo``: ``[chosen_column]``, ``[rejected_column]``.  ``edpo``: ``chosen_column_k`` and
    ``rejected_column_k`` for ``k = 0..K-1`` (contiguous, ``K >= 1``).  Other loss types: none.
    """
    names = set(column_names)
    if loss_type not in DISTILLED_LOSS_TYPES:
        return [], []
    if loss_type != "edpo":
        missing = [c for c in (chosen_column, rejected_column) if c not in names]
        if missing:
            raise ValueError(
                f"{dataset_name} dataset: loss_type {loss_type!r} needs target-reward columns {missing}; "
                f"columns present: {sorted(names)}"
            )
        return [chosen_column], [rejected_column]
    chosen_ks = sorted(int(m.group(1)) for c in names if (m := re.fullmatch(re.escape(chosen_column) + r"_(\d+)", c)))
    rejected_ks = sorted(
        int(m.group(1)) for c in names if (m := re.fullmatch(re.escape(rejected_column) + r"_(\d+)", c))
    )
    if not chosen_ks:
        raise ValueError(
            f"{dataset_name} dataset: loss_type 'edpo' needs one column pair per ensemble member, "
            f"'{chosen_column}_0'/'{rejected_column}_0', ...; columns present: {sorted(names)}"
        )
    if chosen_ks != list(range(len(chosen_ks))) or rejected_ks != chosen_ks:
        raise ValueError(
            f"{dataset_name} dataset: ensemble target columns must be numbered 0..K-1 for both "
            f"'{chosen_column}_k' and '{rejected_column}_k', got chosen {chosen_ks} and rejected {rejected_ks}"
        )
    return [f"{chosen_column}_{k}" for k in chosen_ks], [f"{rejected_column}_{k}" for k in chosen_ks]


def _check_target_values(dataset: Any, columns: Sequence[str], dataset_name: str) -> None:
    """``ValueError`` naming the column and row of the first missing or non-finite target reward."""
    if not hasattr(dataset, "column_names") or dataset.column_names is None:
        return  # streaming dataset: the collator checks every batch
    for column in columns:
        for row, value in enumerate(dataset[column]):
            try:
                ok = value is not None and np.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"{dataset_name} dataset, column {column!r}, row {row}: expected a finite target reward, "
                    f"got {value!r}"
                )


@dataclass
class TargetRewardCollator:
    """Wraps trl's preference collator and adds ``target_chosen``/``target_rejected`` as ``[n, K]`` floats."""

    inner: Callable[[list[dict[str, Any]]], dict[str, Any]]
    chosen_columns: Sequence[str]
    rejected_columns: Sequence[str]

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        columns = (*self.chosen_columns, *self.rejected_columns)
        if not any(c in example for example in examples for c in columns):
            return self.inner(examples)  # a validation set without target rewards (DRDPOTrainer._main_losses)
        stripped, chosen, rejected = [], [], []
        for example in examples:
            example = dict(example)
            try:
                chosen.append([float(example.pop(c)) for c in self.chosen_columns])
                rejected.append([float(example.pop(c)) for c in self.rejected_columns])
            except KeyError as exc:
                raise ValueError(f"batch example lacks target-reward column {exc.args[0]!r}") from exc
            except (TypeError, ValueError) as exc:
                raise ValueError(f"batch example has a non-numeric target reward: {exc}") from exc
            stripped.append(example)
        batch = self.inner(stripped)
        batch["target_chosen"] = torch.tensor(chosen, dtype=torch.float32)
        batch["target_rejected"] = torch.tensor(rejected, dtype=torch.float32)
        if not (torch.isfinite(batch["target_chosen"]).all() and torch.isfinite(batch["target_rejected"]).all()):
            raise ValueError(f"non-finite target reward in a batch (columns {list(self.chosen_columns)})")
        return batch


def _sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """``log pi(y|x)``: next-token log-probs summed over completion tokens (trl 1.12's convention)."""
    per_token = selective_log_softmax(logits[..., :-1, :], input_ids[..., 1:])
    per_token[completion_mask[..., 1:] == 0] = 0.0
    return per_token.sum(dim=1)


def _cat_right_padded(
    first: Sequence[torch.Tensor], second: Sequence[torch.Tensor], pad_values: Sequence[int]
) -> tuple[torch.Tensor, ...]:
    """Stack two right-padded batches row-wise, padding both to the longer width."""
    width = max(first[0].shape[1], second[0].shape[1])
    out = []
    for a, b, pad in zip(first, second, pad_values, strict=True):
        a = torch.nn.functional.pad(a, (0, width - a.shape[1]), value=pad)
        b = torch.nn.functional.pad(b, (0, width - b.shape[1]), value=pad)
        out.append(torch.cat([a, b.to(a.dtype)]))
    return tuple(out)


@dataclass
class _Terms:
    outputs: Any
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    chosen_logratios: torch.Tensor
    rejected_logratios: torch.Tensor
    chosen_lengths: torch.Tensor
    rejected_lengths: torch.Tensor
    main: torch.Tensor  # [n] or [n, K] (edpo)
    ref_cache: dict[str, torch.Tensor]
    sample_logps: torch.Tensor | None = None  # log pi of completions sampled from pi_ref
    sample_lengths: torch.Tensor | None = None


_REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


def _token_fingerprint(dataset: Any) -> str:
    """A hash of the rows' token ids (prompt_ids, chosen_ids, rejected_ids: what trl's collator
    reads), in the dataset's row order (a selection or shuffle included)."""
    from datasets.fingerprint import Hasher

    columns = [c for c in dataset.column_names if c.endswith("_ids")]
    return Hasher.hash(dataset.select_columns(columns).with_format("arrow")[:])


class DRDPOTrainer(RobustMinibatchMixin, DPOTrainer):
    """trl ``DPOTrainer`` with DR weights on every loss and the distillation paper's losses."""

    _tag_names = ["trl", "dpo", "robust-rlhf"]

    def __init__(
        self,
        model: Any,
        ref_model: Any = None,
        args: DRDPOConfig | None = None,
        *pos: Any,
        ref_logps_cache: dict | None = None,
        **kwargs: Any,
    ):
        """trl's arguments, plus ``ref_logps_cache``: a dict the caller owns (the workflow: its job,
        for every seed) where pi_ref's precomputed log-probs are kept by what determines them
        (:meth:`_precompute_ref_logps`); None: each trainer computes its own, as trl does."""
        if not isinstance(args, DRDPOConfig):
            raise ValueError(f"DRDPOTrainer needs a DRDPOConfig as `args`, got {type(args).__name__}")
        self._ref_logps_cache = ref_logps_cache  # read by trl's __init__ (its precompute)
        self._loss_type = args.loss_type[0]
        self._custom_path = self._loss_type in _OWN_LOSS_TYPES or robust_enabled(args.divergence, args.rho)
        train_dataset = kwargs.get("train_dataset", pos[1] if len(pos) > 1 else None)
        if train_dataset is None:
            raise ValueError("DRDPOTrainer needs a train_dataset")
        self._target_chosen, self._target_rejected = resolve_target_columns(
            get_dataset_column_names(train_dataset),
            self._loss_type,
            args.target_chosen_column,
            args.target_rejected_column,
        )
        # trl reads args.loss_type once, here (into self.loss_types): it gets trl's words
        project_loss_types = args.loss_type
        args.loss_type = trl_loss_types(project_loss_types)
        try:
            super().__init__(model, ref_model, args, *pos, **kwargs)
        finally:
            args.loss_type = project_loss_types
        self._check_custom_path_supported()
        if self._target_chosen:
            self._check_datasets_targets()
            self.data_collator = TargetRewardCollator(self.data_collator, self._target_chosen, self._target_rejected)
        self._init_robust(args.average_iterates, args.ema_decay)
        self._release_reference()

    def _release_reference(self) -> None:
        """With pi_ref's log-probs of every training and validation pair precomputed (trl's
        ``precompute_ref_log_probs``, done in ``__init__``), pi_ref is needed again only to sample
        the forward-KL completions (``forward_kl_estimator='ref_samples'``): otherwise it is dropped
        here, so training holds one model on the device, not two."""
        if not self.args.precompute_ref_log_probs or self.ref_model is None:
            return
        if self._loss_type in PESSIMISTIC_LOSS_TYPES and self.args.forward_kl_estimator == "ref_samples":
            return
        self.ref_model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        """trl's precompute of log pi_ref(y|x), once per ``ref_logps_cache`` for a given set of token
        ids, pi_ref and collation: every seed of a job trains on the same pairs against the same
        pi_ref, so the values are the same (trl's own cache misses there: its key, the datasets
        fingerprint, changes with each trainer's arguments)."""
        from datasets import concatenate_datasets

        cache = self._ref_logps_cache
        if cache is None:
            return super()._precompute_ref_logps(dataset, name, batch_size)
        args = self.args
        key = (_token_fingerprint(dataset), hash_module(self.ref_model or self.model), batch_size,
               args.max_length, args.truncation_mode, args.padding_free, args.pad_to_multiple_of,
               self.ld_alpha)  # fmt: skip
        if key in cache:
            return concatenate_datasets([dataset, cache[key]], axis=1)
        out = super()._precompute_ref_logps(dataset, name, batch_size)
        cache[key] = out.select_columns(list(_REF_COLUMNS))
        return out

    # -------------------------------------------------------------- set-up checks
    def _check_custom_path_supported(self) -> None:
        if not self._custom_path:
            return
        problems = {
            "f_divergence_type must be 'reverse_kl'": self.f_divergence_type != "reverse_kl",
            "ld_alpha must be None": self.ld_alpha is not None,
            "use_weighting must be False": self.use_weighting,
            "use_liger_kernel must be False": self.use_liger_kernel,
            "router_aux_loss_coef must be 0 for MoE models": self.aux_loss_enabled,
            "vision datasets are not supported": self._is_vision_dataset,
        }
        bad = [text for text, flag in problems.items() if flag]
        if bad:
            raise ValueError(
                f"loss_type {self._loss_type!r} with divergence={self.args.divergence!r}: " + "; ".join(bad)
            )
        if (
            self._loss_type in PESSIMISTIC_LOSS_TYPES
            and self.args.forward_kl_estimator == "ref_samples"
            and self.ref_model is None
            and not is_peft_model(self.model)
        ):
            raise ValueError(
                "forward_kl_estimator='ref_samples' samples from the reference model, which is not kept in memory "
                "with precompute_ref_log_probs=True; pass a ref_model or use forward_kl_estimator='dataset'"
            )

    def _check_datasets_targets(self) -> None:
        columns = self._target_chosen + self._target_rejected
        _check_target_values(self.train_dataset, columns, "train")
        evals = self.eval_dataset if isinstance(self.eval_dataset, dict) else {"eval": self.eval_dataset}
        for name, dataset in evals.items():
            if dataset is None or not set(get_dataset_column_names(dataset)) & set(columns):
                continue  # no target rewards: evaluated with the DPO loss of the pair (_main_losses)
            resolve_target_columns(
                get_dataset_column_names(dataset),
                self._loss_type,
                self.args.target_chosen_column,
                self.args.target_rejected_column,
                dataset_name=name,
            )
            _check_target_values(dataset, columns, name)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in self._target_chosen + self._target_rejected:
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def _needs_global_batch(self) -> bool:
        return self._robust_on() or self._loss_type == "edpo"

    # -------------------------------------------------------------- schedule
    def current_gamma(self) -> float:
        """Forward-KL coefficient at the current step: constant, or linear ``gamma_start -> gamma_end``."""
        if self.args.gamma_schedule == "constant":
            return float(self.args.gamma)
        last = max(int(self.state.max_steps) - 1, 1)
        frac = min(int(self.state.global_step), last) / last
        return float(self.args.gamma_start + (self.args.gamma_end - self.args.gamma_start) * frac)

    # -------------------------------------------------------------- per-example terms
    def _reference_logps(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        if "ref_chosen_logps" in inputs and "ref_rejected_logps" in inputs:
            return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"], {}
        ref_inputs = {k: v for k, v in inputs.items() if k not in _TARGET_KEYS}
        ref = self.ref_model if self.ref_model is not None else self.model
        ref_chosen, ref_rejected = self.compute_ref_log_probs(ref, ref_inputs)
        return (
            ref_chosen,
            ref_rejected,
            {"ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected},
        )

    def _main_losses(self, chosen_lr, rejected_lr, chosen_len, rejected_len, inputs) -> torch.Tensor:
        kind = self._loss_type
        if kind == "ipo":
            return ipo_loss(chosen_lr, rejected_lr, chosen_len, rejected_len, self.beta)
        if kind not in DISTILLED_LOSS_TYPES:  # dpo, pdpo
            return dpo_sigmoid_loss(chosen_lr, rejected_lr, self.beta)
        if "target_chosen" not in inputs:
            if self.model.training:
                raise ValueError(f"loss_type {kind!r}: a training batch without target rewards")
            # a validation set without targets (the module docstring): the labelled pair's DPO loss
            return dpo_sigmoid_loss(chosen_lr, rejected_lr, self.beta)
        target_chosen, target_rejected = inputs["target_chosen"], inputs["target_rejected"]
        if kind != "edpo":  # ddpo, dpdpo
            return distillation_loss(chosen_lr, rejected_lr, target_chosen[:, 0], target_rejected[:, 0], self.beta)
        # edpo: one column per ensemble member, [n, K]
        return distillation_loss(
            chosen_lr.unsqueeze(1),
            rejected_lr.unsqueeze(1),
            target_chosen,
            target_rejected,
            self.beta,
        )

    def _terms(self, model, inputs, samples=None) -> _Terms:
        """One policy forward over the pair (and, for ``ref_samples``, the sampled completions)."""
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        completion_mask = inputs["completion_mask"]
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        rows, width = input_ids.shape
        if samples is not None:
            if set(model_kwargs) != {"input_ids", "attention_mask"}:
                raise ValueError(
                    "forward_kl_estimator='ref_samples' supports text-only batches "
                    f"(input_ids, attention_mask), got model inputs {sorted(model_kwargs)}"
                )
            sample_ids, sample_attention, sample_completion = samples
            input_ids, attention_mask, completion_mask = _cat_right_padded(
                (input_ids, attention_mask, completion_mask),
                (sample_ids, sample_attention, sample_completion),
                (self._tokenizer.pad_token_id, 0, 0),
            )
            model_kwargs.update(input_ids=input_ids, attention_mask=attention_mask)
        model_kwargs["use_cache"] = False
        outputs = model(**model_kwargs)
        all_logps = _sequence_logps(outputs.logits, input_ids, completion_mask)
        if samples is not None:
            outputs["logits"] = outputs.logits[:rows, :width]
        chosen_logps, rejected_logps = all_logps[:rows].chunk(2, dim=0)
        ref_chosen, ref_rejected, cache = self._reference_logps(model, inputs)
        chosen_len, rejected_len = inputs["completion_mask"].sum(dim=1).chunk(2, dim=0)
        chosen_lr, rejected_lr = chosen_logps - ref_chosen, rejected_logps - ref_rejected
        main = self._main_losses(chosen_lr, rejected_lr, chosen_len, rejected_len, inputs)
        return _Terms(
            outputs,
            chosen_logps,
            rejected_logps,
            chosen_lr,
            rejected_lr,
            chosen_len,
            rejected_len,
            main,
            cache,
            sample_logps=all_logps[rows:] if samples is not None else None,
            sample_lengths=samples[2].sum(dim=1) if samples is not None else None,
        )

    def _example_statistics(self, model, inputs):
        terms = self._terms(model, inputs)
        return terms.main.detach(), terms.ref_cache

    # -------------------------------------------------------------- forward KL
    @torch.no_grad()
    def _sample_reference(self, inputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Completions ``y ~ pi_ref(.|x)`` for the batch prompts; returns right-padded ids, attention,
        completion mask."""
        n = inputs["input_ids"].shape[0] // 2
        ids, attention, completion = (inputs[k][:n] for k in ("input_ids", "attention_mask", "completion_mask"))
        prompt_lengths = (attention.bool() & ~completion.bool()).sum(dim=1)
        if int(prompt_lengths.min()) == 0:
            raise ValueError("forward_kl_estimator='ref_samples' needs a non-empty prompt in every example")
        width = int(prompt_lengths.max())
        pad_id = self._tokenizer.pad_token_id
        prompts = ids.new_full((n, width), pad_id)
        prompt_mask = torch.zeros_like(prompts)
        for i, length in enumerate(prompt_lengths.tolist()):
            prompts[i, width - length :] = ids[i, :length]
            prompt_mask[i, width - length :] = 1
        config = GenerationConfig(
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=self.args.forward_kl_max_new_tokens,
            num_return_sequences=self.args.forward_kl_num_samples,
            pad_token_id=pad_id,
            eos_token_id=self._tokenizer.eos_token_id,
        )
        if self.ref_model is not None:
            generator, context = (
                self.accelerator.unwrap_model(self.ref_model),
                contextlib.nullcontext(),
            )
        else:
            generator = self.accelerator.unwrap_model(self.model)
            context = use_adapter(generator, adapter_name="ref" if "ref" in generator.peft_config else None)
        with context:
            sequences = generator.generate(input_ids=prompts, attention_mask=prompt_mask, generation_config=config)
        new = sequences[:, width:]
        is_eos = (new == self._tokenizer.eos_token_id).long()
        new_mask = ((is_eos.cumsum(dim=1) - is_eos) == 0).long()  # up to and including the first EOS
        repeated_mask = prompt_mask.repeat_interleave(self.args.forward_kl_num_samples, dim=0)
        attention_mask = torch.cat([repeated_mask, new_mask], dim=1)
        completion_mask = torch.cat([torch.zeros_like(repeated_mask), new_mask], dim=1)
        return flush_left(attention_mask, sequences, completion_mask)

    def _forward_kl(self, terms: _Terms) -> torch.Tensor:
        """Per-prompt estimate of ``KL(pi_ref || pi)`` up to a constant (distillation paper eqs. 11, 13)."""
        normalize = self.args.forward_kl_length_normalize
        if self.args.forward_kl_estimator == "dataset":
            chosen = forward_kl_estimate(terms.chosen_logps, terms.chosen_lengths if normalize else None)
            rejected = forward_kl_estimate(terms.rejected_logps, terms.rejected_lengths if normalize else None)
            return 0.5 * (chosen + rejected)
        per_sample = forward_kl_estimate(terms.sample_logps, terms.sample_lengths if normalize else None)
        return per_sample.view(-1, self.args.forward_kl_num_samples).mean(dim=1)

    # -------------------------------------------------------------- loss
    def _compute_loss(self, model, inputs, return_outputs):
        if not self._custom_path:
            return super()._compute_loss(model, inputs, return_outputs)
        mode = "train" if self.model.training else "eval"
        pessimistic = self._loss_type in PESSIMISTIC_LOSS_TYPES
        samples = None
        if pessimistic and self.args.forward_kl_estimator == "ref_samples":
            attention, sequences, completion = self._sample_reference(inputs)
            samples = (sequences, attention, completion)
        terms = self._terms(model, inputs, samples)
        main = terms.main
        if self._reweighting():  # training only; evaluation takes the uniform mean
            weights, member, scale = self._microbatch_weights(main.detach())
            selected = main if member is None else main[:, member]
            loss = scale * weighted_mean(selected, weights)
        else:
            member = ensemble_member(main.detach()) if main.ndim == 2 else None
            selected = main if member is None else main[:, member]
            loss = selected.mean()
            if member is not None:
                self._metrics[mode]["edpo/member"].append(float(member))
        loss = loss * self.loss_weights[0]
        if pessimistic:
            gamma = self.current_gamma()
            kl = self._forward_kl(terms)
            loss = loss + gamma * kl.mean()
            self._metrics[mode]["gamma"].append(gamma)
            self._metrics[mode]["forward_kl"].append(self.accelerator.gather(kl.detach()).mean().item())
        self._log_pair_metrics(mode, inputs, terms, selected.detach())
        return (loss, terms.outputs) if return_outputs else loss

    def _log_pair_metrics(self, mode: str, inputs, terms: _Terms, selected: torch.Tensor) -> None:
        gather = self.accelerator.gather
        metrics = self._metrics[mode]
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        metrics["num_tokens"] = [self._total_train_tokens]
        chosen_rewards = self.beta * terms.chosen_logratios.detach()
        rejected_rewards = self.beta * terms.rejected_logratios.detach()
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_rewards > rejected_rewards).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(terms.chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(terms.rejected_logps.detach()).mean().item())
        metrics["loss/per_example_mean"].append(gather(selected).mean().item())
