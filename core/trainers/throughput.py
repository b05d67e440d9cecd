"""Throughput and memory of every trainer, per logging interval (what a GPU practitioner reads first):

* ``perf/samples_per_s`` — collated training rows per second of the interval (sequences: trl
  collates a pair's chosen and rejected as two; PPO: rollouts);
* ``perf/tokens_per_s`` — non-padding tokens the model read per second (the sum of every
  ``attention_mask`` of the batches; PPO: its rollouts' query and response tokens);
* ``perf/peak_memory_gib`` — on CUDA the peak memory allocated on the device during the interval
  (``torch.cuda.max_memory_allocated``, reset at each log); on the CPU the process's peak resident
  memory so far (``ru_maxrss``).

They go to the job's MLflow run through ``log_fn(metrics, step)`` only, never into the Trainer's
``log_history``: a model's metrics file stays a function of its config and seed.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import TrainerCallback

__all__ = ["ThroughputMeter", "batch_counts"]


def batch_counts(inputs: Mapping[str, Any]) -> tuple[int, int]:
    """(rows, non-padding tokens) of a collated batch: the rows of its first tensor, the tokens of
    every ``*attention_mask*`` tensor (else the elements of ``input_ids``)."""
    tensors = {k: v for k, v in inputs.items() if torch.is_tensor(v)}
    if not tensors:
        return 0, 0
    rows = int(next(iter(tensors.values())).shape[0])
    masks = [v for k, v in tensors.items() if "attention_mask" in k]
    if masks:
        return rows, int(sum(int(m.sum()) for m in masks))
    ids = tensors.get("input_ids")
    return rows, int(ids.numel()) if ids is not None else 0


def _peak_memory_gib(device: torch.device | None) -> float:
    if device is not None and device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        return peak / 2**30
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / (2**30 if sys.platform == "darwin" else 2**20)


class ThroughputMeter(TrainerCallback):
    """Counts rows and tokens of every training step (:meth:`attach` wraps ``training_step``, or a
    custom loop calls :meth:`count`) and logs the rates at every ``on_log``."""

    def __init__(self, log_fn: Callable[[Mapping[str, float], int], None]) -> None:
        self.log_fn = log_fn
        self.device: torch.device | None = None
        self._rows = self._tokens = 0
        self._since = time.perf_counter()

    def attach(self, trainer: Any) -> Any:
        """Count the rows and tokens of each of ``trainer``'s training steps and add this callback."""
        inner = trainer.training_step

        def training_step(model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
            self.count(*batch_counts(inputs))
            return inner(model, inputs, num_items_in_batch)

        trainer.training_step = training_step
        trainer.add_callback(self)
        self.device = getattr(trainer.args, "device", None)
        return trainer

    def count(self, rows: int, tokens: int) -> None:
        self._rows += int(rows)
        self._tokens += int(tokens)

    def on_train_begin(self, args, state, control, **kwargs):
        self.device = getattr(args, "device", self.device)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._rows = self._tokens = 0
        self._since = time.perf_counter()
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        now = time.perf_counter()
        elapsed = max(now - self._since, 1e-9)
        if self._rows or self._tokens:
            metrics = {"perf/samples_per_s": self._rows / elapsed, "perf/tokens_per_s": self._tokens / elapsed,
                       "perf/peak_memory_gib": _peak_memory_gib(self.device)}  # fmt: skip
            self.log_fn(metrics, int(state.global_step))
        self._rows = self._tokens = 0
        self._since = now
        return control
