"""Training-time probes for likelihood collapse (distillation paper Figure B.1).

On a fixed probe set, during policy training:

* ``preferred_log_likelihood`` = mean_i log pi(y_i^+ | x_i), ``dispreferred_log_likelihood`` the
  same for ``y^-`` (sums over completion tokens);
* ``preferred_logratio`` / ``dispreferred_logratio`` = mean_i [log pi - log pi_ref](y | x), and
  ``implicit_accuracy`` = fraction with ``logratio(y+) > logratio(y-)`` (strict);
* ``kl_loss_ref`` = mean_j [log pi_ref(y_j | x_j) - log pi(y_j | x_j)] over completions ``y_j``
  sampled once from pi_ref: the Monte-Carlo estimate of KL(pi_ref || pi) that p-DPO penalises
  (distillation paper eq. 13; "sample KL" in Figure B.1).

Reference log-likelihoods are computed once when the probe set is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from core.atomic import atomic_write_text
from core.eval.encoding import (
    Batching,
    EncodedPairs,
    EncodedSequence,
    encode_completion,
    encode_pairs,
    resolve_pad_id,
    rows_from,
)
from core.eval.generation import GenerationSettings, generate_completions
from core.eval.pairwise import PairLogProbs, pair_logprobs, sequence_logprobs

__all__ = ["LikelihoodProbeCallback", "ProbeSet", "build_probe_set", "compute_probes"]


@dataclass
class ProbeSet:
    """Encoded probe pairs and reference samples with their cached reference log-likelihoods."""

    pairs: EncodedPairs
    ref_pair_logprobs: PairLogProbs
    ref_samples: list[EncodedSequence]
    ref_sample_logprobs: np.ndarray
    pad_id: int
    batch_size: int | Batching = 8


def build_probe_set(
    ref_model: torch.nn.Module,
    tokenizer: Any,
    probe_rows: Any,
    *,
    ref_samples: Sequence[tuple[Any, str]] | None = None,
    sample_settings: GenerationSettings | None = None,
    batch_size: int | Batching = 8,
    max_length: int | None = None,
    add_eos: bool = True,
) -> ProbeSet:
    """Encode the probe pairs, draw (or take) completions from pi_ref for the KL estimate, and cache
    pi_ref's log-likelihoods.  Without ``ref_samples`` one completion per probe prompt is sampled
    from ``ref_model`` with ``sample_settings`` (seeded)."""
    pairs = encode_pairs(probe_rows, tokenizer, max_length=max_length, add_eos=add_eos, source="probe set")
    if len(pairs) == 0:
        raise ValueError("probe set: no rows")
    pad_id = resolve_pad_id(tokenizer, ref_model)
    if ref_samples is None:
        prompts = [r["prompt"] for r in rows_from(probe_rows, "probe set")]
        completions = generate_completions(ref_model, tokenizer, prompts, sample_settings)
        ref_samples = list(zip(prompts, completions, strict=True))
    samples = []
    for j, (p, c) in enumerate(ref_samples):
        if not c:
            continue  # an empty sample (immediate EOS) carries no tokens to score
        samples.append(
            encode_completion(tokenizer, p, c, add_eos=add_eos, max_length=max_length, where=f"reference sample {j}")
        )
    if not samples:
        raise ValueError("probe set: every reference sample is empty; cannot estimate KL(pi_ref || pi)")
    ref_lp = pair_logprobs(ref_model, pairs, pad_id, batch_size)
    ref_sample_lp = sequence_logprobs(ref_model, samples, pad_id, batch_size).total
    return ProbeSet(pairs, ref_lp, samples, ref_sample_lp, pad_id, batch_size)


def compute_probes(policy: torch.nn.Module, probes: ProbeSet) -> dict[str, float]:
    """The Figure B.1 quantities of ``policy`` on the probe set (see module docstring)."""
    lp = pair_logprobs(policy, probes.pairs, probes.pad_id, probes.batch_size)
    sample_lp = sequence_logprobs(policy, probes.ref_samples, probes.pad_id, probes.batch_size).total
    lr_c = lp.chosen.total - probes.ref_pair_logprobs.chosen.total
    lr_r = lp.rejected.total - probes.ref_pair_logprobs.rejected.total
    return {
        "preferred_log_likelihood": float(lp.chosen.total.mean()),
        "dispreferred_log_likelihood": float(lp.rejected.total.mean()),
        "preferred_logratio": float(lr_c.mean()),
        "dispreferred_logratio": float(lr_r.mean()),
        "implicit_accuracy": float((lr_c > lr_r).mean()),
        "kl_loss_ref": float((probes.ref_sample_logprobs - sample_lp).mean()),
    }


class LikelihoodProbeCallback(TrainerCallback):
    """Computes :func:`compute_probes` at the start of training and every ``every_n_steps``
    optimiser steps.  Each record ``{"step": s, "probe/<name>": value, ...}`` is kept in
    ``history``, appended to ``state.log_history``, passed to ``log_fn(metrics, step)`` (e.g.
    ``mlflow.log_metrics``) and, with ``jsonl_path``, rewritten atomically as JSON lines.
    All ranks compute (sharded models need every rank); only the main process records."""

    def __init__(
        self,
        probes: ProbeSet,
        every_n_steps: int = 50,
        *,
        log_fn: Callable[[dict[str, float], int], None] | None = None,
        jsonl_path: str | os.PathLike | None = None,
        prefix: str = "probe/",
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.probes = probes
        self.every_n_steps = every_n_steps
        self.log_fn = log_fn
        self.jsonl_path = Path(jsonl_path) if jsonl_path is not None else None
        self.prefix = prefix
        self.history: list[dict[str, float]] = []

    def _record(self, model: torch.nn.Module, state: Any) -> None:
        values = compute_probes(model, self.probes)
        if not getattr(state, "is_world_process_zero", True):
            return
        step = int(state.global_step)
        metrics = {f"{self.prefix}{k}": v for k, v in values.items()}
        self.history.append({"step": step, **metrics})
        state.log_history.append({"step": step, **metrics})
        if self.log_fn is not None:
            self.log_fn(metrics, step)
        if self.jsonl_path is not None:
            self._write()

    def _write(self) -> None:
        atomic_write_text(self.jsonl_path, "".join(json.dumps(rec) + "\n" for rec in self.history))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self._record(model, state)
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and state.global_step % self.every_n_steps == 0:
            self._record(model, state)
        return control
