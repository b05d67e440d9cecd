"""Throughput and memory of every trainer, per logging interval (what a GPU practitioner reads first):

* ``perf/samples_per_s`` — collated training rows per second of the interval (sequences: trl
  collates a pair's chosen and rejected as two; PPO: rollouts);
* ``perf/tokens_per_s`` — non-padding tokens the model read per second (the sum of every
  ``attention_mask`` of the batches; PPO: its rollouts' query and response tokens);
* ``perf/peak_memory_gib`` — on CUDA the peak memory allocated on the device during the interval
  (``torch.cuda.max_memory_allocated``, reset at each log); on the CPU the process's peak resident
  memory so far (``ru_maxrss``);
* ``perf/s_per_step`` — wall seconds per optimiser step of the interval;
* ``perf/<phase>_s`` — seconds of each phase a custom loop timed in the interval (:meth:`ThroughputMeter.phase`;
  DR-PPO: ``rollout`` and ``optimise``), and ``perf/<name>`` the interval's mean of each value it
  noted (:meth:`ThroughputMeter.note`; DR-PPO: ``stopped_share``, the responses that end at their
  stop token before the length cap).

They go to the job's MLflow run through ``log_fn(metrics, step)`` only, never into the Trainer's
``log_history``: a model's metrics file stays a function of its config and seed. At the start of
training, where every trainable parameter lives (:func:`trainable_placement`, e.g. ``cuda:0
float32: 3,686,400``) is printed to the job's log and given to ``tag_fn`` (the run's ``perf.trainable`` tag).
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from transformers import TrainerCallback

__all__ = ["ThroughputMeter", "batch_counts", "trainable_placement"]


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


def trainable_placement(model: torch.nn.Module | None) -> dict[str, int]:
    """Trainable parameter count per ``"<device> <dtype>"`` (e.g. ``{"cuda:0 float32": 3686400}``)."""
    counts: dict[str, int] = defaultdict(int)
    for p in model.parameters() if model is not None else ():
        if p.requires_grad:
            counts[f"{p.device} {str(p.dtype).removeprefix('torch.')}"] += p.numel()
    return dict(sorted(counts.items()))


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

    def __init__(
        self,
        log_fn: Callable[[Mapping[str, float], int], None],
        tag_fn: Callable[[Mapping[str, str]], None] | None = None,
    ) -> None:
        self.log_fn, self.tag_fn = log_fn, tag_fn
        self.device: torch.device | None = None
        #: the trainable parameters' placement at the start of training (:func:`trainable_placement`)
        self.placement: dict[str, int] = {}
        self._reset(time.perf_counter(), 0)

    def _reset(self, now: float, step: int) -> None:
        self._rows = self._tokens = 0
        self._since, self._step = now, step
        self._phases: dict[str, float] = defaultdict(float)
        self._notes: dict[str, list[float]] = defaultdict(list)

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

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body as phase ``name`` (``perf/<name>_s``: its seconds in the logging interval)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._phases[name] += time.perf_counter() - start

    def note(self, name: str, value: float) -> None:
        """One observation of ``perf/<name>`` (logged as the interval's mean)."""
        self._notes[name].append(float(value))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.device = getattr(args, "device", self.device)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.placement = trainable_placement(model)
        where = "; ".join(f"{k}: {v:,}" for k, v in self.placement.items()) or "none"
        print(f"[perf] trainable parameters: {where}", flush=True)
        if self.tag_fn is not None:
            self.tag_fn({"perf.trainable": where})
        self._reset(time.perf_counter(), int(state.global_step))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        now, step = time.perf_counter(), int(state.global_step)
        elapsed = max(now - self._since, 1e-9)
        if self._rows or self._tokens:
            metrics = {"perf/samples_per_s": self._rows / elapsed, "perf/tokens_per_s": self._tokens / elapsed,
                       "perf/peak_memory_gib": _peak_memory_gib(self.device)}  # fmt: skip
            if step > self._step:
                metrics["perf/s_per_step"] = elapsed / (step - self._step)
            metrics.update({f"perf/{name}_s": seconds for name, seconds in self._phases.items()})
            metrics.update({f"perf/{name}": sum(v) / len(v) for name, v in self._notes.items() if v})
            self.log_fn(metrics, step)
        self._reset(now, step)
        return control
