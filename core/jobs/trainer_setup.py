"""What the training jobs share around trl's trainers: trainer arguments from the config slice
(checkpoint cadence included; the folders themselves: core.jobs.checkpoints), the validation-loss
schedule, the non-finite guard every trainer gets, atomic saving of the final model (LoRA merged,
so every later stage loads a plain HF folder; never a nan/inf one), step curves, the DR weight and
e-DPO member summaries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.jobs.checkpoints import SAVE_TOTAL_LIMIT
from core.jobs.job import Job, rank

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def _saving(train: Mapping[str, Any], planned: int) -> dict[str, Any]:
    """``save_steps`` (default: a tenth of ``planned``, rounded up to a multiple of the logging
    interval, so a resumed run logs the same windows as an uninterrupted one) and rotation."""
    steps = train.get("save_steps")
    if not steps:
        every = int(train.get("logging_steps") or 10)
        steps = max(every, math.ceil(max(planned // 10, 1) / every) * every)
    return {"save_strategy": "steps", "save_steps": int(steps),
            "save_total_limit": int(train.get("save_total_limit") or SAVE_TOTAL_LIMIT)}  # fmt: skip


def checkpoint_args(job: Job, config_cls: Any, n_train: int, train: Mapping[str, Any] | None = None) -> dict:
    """Trainer fields that checkpoint every ``train.save_steps`` steps (default about a tenth of
    the planned steps) keeping the newest ``train.save_total_limit`` (default 2)."""
    train = job.params.get("train") or {} if train is None else train
    return _saving(train, planned_steps(config_cls, train, n_train, job.nproc))


def ppo_checkpoint_args(train: Mapping[str, Any], nproc: int = 1) -> dict:
    """:func:`checkpoint_args` for PPO, whose steps are updates of ``per_device_train_batch_size *
    gradient_accumulation_steps * nproc`` episodes out of ``total_episodes``."""
    batch = int(train.get("per_device_train_batch_size", 1)) * int(train.get("gradient_accumulation_steps", 1))
    updates = max(int(train.get("total_episodes", 0)) // max(batch * max(int(nproc), 1), 1), 1)
    return _saving({**train, "logging_steps": train.get("logging_steps") or 1}, updates)


def mean_logged_loss(log_history: list[Mapping[str, Any]]) -> float:
    """The training loss averaged over every optimiser step, from the logged window means (each
    weighted by its number of steps): the same for a run resumed from a checkpoint as for one that
    was never interrupted (``TrainOutput.training_loss`` only averages the steps of the last call)."""
    total, steps, last = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and int(entry["step"]) > last:
            width = int(entry["step"]) - last
            total, steps, last = total + float(entry["loss"]) * width, steps + width, int(entry["step"])
    return total / steps if steps else math.nan


def trainer_args(
    job: Job, config_cls: Any, output_dir: str, seed: int, train: Mapping[str, Any] | None = None, **fields: Any
) -> Any:
    """``config_cls`` (a TrainingArguments subclass) from ``train`` (default: the job's
    ``params.train``) and the trainer ``fields``, plus fixed workflow
    settings: checkpoints only when ``fields`` ask for them (:func:`checkpoint_args`), no
    third-party reporting (MLflow is logged by the workflow), CPU when
    the job has no GPU, the job's seed for model init and data order, and float32 unless the
    config's ``train`` block says ``bf16: true`` (trl's configs default to bf16 autocast, which
    on a CPU with bf16 units rounds every matmul to 8 mantissa bits, so results would depend on
    the batch layout and the machine), and no gradient checkpointing unless it says
    ``gradient_checkpointing: true`` (trl's configs default to it: it saves activation memory on a
    GPU at the price of a second forward pass, ~20% of a CPU reward step of the embedded default,
    benchmarks/step_cost.py; the gradients are the same)."""
    args: dict[str, Any] = {
        "output_dir": output_dir,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": job.use_cpu,
        "seed": seed,
        "data_seed": seed,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "logging_steps": 10,
    }
    args.update(job.params.get("train") or {} if train is None else train)
    args.update(fields)
    args.setdefault("bf16", False)
    args.setdefault("gradient_checkpointing", False)
    return config_cls(**args)


def planned_steps(config_cls: Any, train: Mapping[str, Any], n_train: int, nproc: int = 1) -> int:
    """The optimiser steps a Trainer with ``train`` runs: ``max_steps`` when > 0, else the epochs
    times the updates per epoch (micro-batches of ``per_device_train_batch_size`` per process,
    ``gradient_accumulation_steps`` per update), as transformers counts them from ``n_train`` rows
    (trl's dropping of pairs over ``max_length`` can make the real count slightly smaller).
    Unset fields take ``config_cls``'s defaults."""
    fields = config_cls.__dataclass_fields__

    def get(key: str) -> Any:
        return train[key] if train.get(key) is not None else fields[key].default

    if int(get("max_steps")) > 0:
        return int(get("max_steps"))
    micro_batches = math.ceil(n_train / (int(get("per_device_train_batch_size")) * max(int(nproc), 1)))
    updates = max(math.ceil(micro_batches / int(get("gradient_accumulation_steps"))), 1)
    return math.ceil(float(get("num_train_epochs")) * updates)


def eval_args(job: Job, config_cls: Any, n_train: int) -> dict[str, Any]:
    """Trainer fields that evaluate the job's validation set (``eval_dataset``) during training, so
    ``log_history`` (and :func:`curves`) has an ``eval_loss`` series: at step 0 (the starting
    model), every ``train.eval_steps`` steps (default ``max(1, steps // 10)``, ten points over
    the budget) and at the last step, in batches of the training batch size."""
    train = job.params.get("train") or {}
    steps = train.get("eval_steps") or max(1, planned_steps(config_cls, train, n_train, job.nproc) // 10)
    batch = (
        train.get("per_device_train_batch_size")
        or config_cls.__dataclass_fields__["per_device_train_batch_size"].default
    )
    return {
        "eval_strategy": "steps",
        "eval_steps": int(steps),
        "eval_on_start": True,
        "per_device_eval_batch_size": int(batch),
    }


def pairs_only(ds: Any, extra: tuple[str, ...] = ()) -> Any:
    keep = [c for c in (*PAIR_COLUMNS, *extra) if c in ds.column_names]
    return ds.select_columns(keep)


def guard(trainer: Any) -> Any:
    """``trainer`` with the non-finite guard attached (core.trainers.guards): the job fails at the
    first optimiser step with a nan/inf loss or gradient norm, before the step reaches the weights."""
    from core.trainers.guards import guard_trainer

    guard_trainer(trainer)
    return trainer


def save_final(model: Any, tokenizer: Any, out: str, trainer: Any = None) -> None:
    """Write the trained model and tokenizer to ``out`` atomically (rank 0). LoRA is merged in
    float32 (``W + s B A`` added in bf16 would round most of a small update away, and evaluation
    would read the rounded model), so a LoRA model of bf16 weights is saved in float32. A model
    with a nan/inf tensor is refused before anything is written (``NonFiniteError`` naming the
    first 5 tensors): the job fails and leaves no model folder."""
    if trainer is not None:
        trainer.accelerator.wait_for_everyone()
        model = trainer.accelerator.unwrap_model(trainer.model)
    if rank() != 0:
        return
    if hasattr(model, "merge_and_unload"):
        import torch

        model = model.to(torch.float32).merge_and_unload()
    from core.atomic import atomic_directory
    from core.trainers.guards import raise_if_nonfinite_parameters

    raise_if_nonfinite_parameters(model, f"the trained model for {out}")

    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def curves(log_history: list[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Every numeric series of ``Trainer.state.log_history``: ``{key: {"step": [...], "value": [...]}}``."""
    out: dict[str, dict[str, list[float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        for key, value in entry.items():
            if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            series = out.setdefault(key, {"step": [], "value": []})
            series["step"].append(int(step))
            series["value"].append(float(value))
    return out


def last_values(series: Mapping[str, Mapping[str, list[float]]]) -> dict[str, float]:
    return {k: v["value"][-1] for k, v in series.items() if v["value"]}


def robust_summary(history: list[Mapping[str, Any]]) -> dict[str, float]:
    """Means over steps of the DR weight statistics (core.trainers.robust records)."""
    out: dict[str, float] = {}
    for key in ("robust_loss", "mean_loss", "max_weight", "ess", "frac_zero_weights"):
        vals = [float(r[key]) for r in history if key in r]
        if vals:
            out[f"mean_{key}"] = sum(vals) / len(vals)
    return out


def member_fractions(history: list[Mapping[str, Any]], members: list[str]) -> tuple[dict, dict]:
    """Figure B.3: share of examples (summed over steps) on which each member attains the min of
    the distillation loss, and the share of steps whose minibatch min picked each member."""
    counts = [0] * len(members)
    steps = [0] * len(members)
    for rec in history:
        for k, c in enumerate(rec.get("member_counts", [])):
            counts[k] += int(c)
        if "member" in rec:
            steps[int(rec["member"])] += 1
    total, nsteps = max(sum(counts), 1), max(sum(steps), 1)
    return (
        {m: counts[k] / total for k, m in enumerate(members)},
        {m: steps[k] / nsteps for k, m in enumerate(members)},
    )
