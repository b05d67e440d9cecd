"""Seeded sampling of completions from a policy on held-out prompts (distillation paper §6.1).

Prompts are encoded by :func:`core.eval.encoding.encode_prompt` (the chat template with the
generation prompt when the tokenizer has one, else plain text ending with the encoding rule's
separator, which each completion then starts with), left-padded and sampled in
batches of ``batch_size`` in the given order.  Batch ``b`` draws from ``torch.manual_seed(s_b)``,
``s_b`` derived from ``(seed, b)`` by numpy's ``SeedSequence``, inside ``torch.random.fork_rng`` so
the caller's RNG state is untouched: the same settings and prompts give the same completions on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from core.eval.encoding import encode_prompt, pad_sequences, prompt_separator, resolve_pad_id, stop_token_ids

__all__ = ["GenerationSettings", "generate_completions"]


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings (config keys of the same names).  ``top_k=0`` and ``top_p=1`` disable
    those filters; ``do_sample=False`` is greedy decoding."""

    max_new_tokens: int = 64
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    batch_size: int = 8
    max_prompt_length: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"generation.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"generation.temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"generation.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"generation.top_k must be >= 0, got {self.top_k}")
        if self.batch_size < 1:
            raise ValueError(f"generation.batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> GenerationSettings:
        """Build from a config mapping; ValueError naming any unknown key."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown generation setting(s) {unknown}; expected keys {sorted(known)}")
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batch_seed(seed: int, batch: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def generate_completions(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str | list],
    settings: GenerationSettings | None = None,
) -> list[str]:
    """One sampled completion per prompt: its decoded new tokens (special tokens skipped) after the
    prompt's :func:`core.eval.encoding.prompt_separator`."""
    from transformers import GenerationConfig

    settings = settings or GenerationSettings()
    pad_id = resolve_pad_id(tokenizer, model)
    stops = stop_token_ids(tokenizer)
    eos_id = stops if len(stops) > 1 else getattr(tokenizer, "eos_token_id", None)
    gen_cfg = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        temperature=settings.temperature if settings.do_sample else None,
        top_p=settings.top_p if settings.do_sample else None,
        top_k=settings.top_k if settings.do_sample else None,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
    )
    encoded = [encode_prompt(tokenizer, p, settings.max_prompt_length) for p in prompts]
    device = next(model.parameters()).device
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for b, lo in enumerate(range(0, len(encoded), settings.batch_size)):
            ids, mask = pad_sequences(encoded[lo : lo + settings.batch_size], pad_id, side="left")
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
                torch.manual_seed(_batch_seed(settings.seed, b))
                gen = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen_cfg
                )
            new = gen[:, ids.shape[1] :].cpu()
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            batch = prompts[lo : lo + settings.batch_size]
            out.extend(prompt_separator(tokenizer, p) + t for p, t in zip(batch, texts, strict=True))
    finally:
        model.train(was_training)
    return out
