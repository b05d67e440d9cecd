"""Frozen encoder states of (prompt, response) texts, computed once per text.

A sequence-classifier reward model ``r(x, y) = w . tanh(W h_CLS(x, y) + b) + c`` (BERT's
``BertForSequenceClassification``: the last layer's [CLS] state ``h_CLS``, the pooler, a linear
output) whose encoder is frozen depends on the text only through ``h_CLS``. So the states are
computed once per text (:func:`encoder_states`) and the head is trained on them
(core.trainers.feature_head); the saved model is still an ordinary folder that scores raw text.
Texts are encoded by the project's one rule (core.eval.encoding.encode_completion), so a cached
state is exactly what the saved model computes. Also returned: the mean-pooled last layer (the
sentence embedding all-MiniLM-L6-v2 was trained for) and the token count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["encoder_states", "padded_batch"]


def padded_batch(seqs: Sequence[Sequence[int]], idx: Sequence[int], pad: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` of the token sequences ``seqs[i]`` for ``i`` in ``idx``,
    right-padded with ``pad`` to the longest of them (long tensors on the CPU)."""
    import torch

    width = max(len(seqs[i]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
        mask[row, : len(seqs[i])] = 1
    return ids, mask


def encoder_states(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    max_length: int,
    batch_size: int = 32,
    truncation: str | None = None,
) -> dict[str, np.ndarray]:
    """``{"cls": (n, d), "mean": (n, d), "n_tokens": (n,)}`` float32 states of the last layer of
    ``model``'s encoder (a ``*ForSequenceClassification`` with a ``base_model``), on its device,
    batched by length under ``torch.inference_mode``. ``truncation``: default
    core.eval.encoding.default_truncation (an encoder keeps the start: its [CLS] position)."""
    import torch

    from core.eval.encoding import default_truncation, encode_completion, resolve_pad_id

    truncation = truncation or default_truncation(tokenizer)
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    seqs = [
        encode_completion(tokenizer, p, c, max_length=max_length, truncation=truncation, where=f"text {i}").ids
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True))
    ]
    pad = resolve_pad_id(tokenizer, model)
    device = next(model.parameters()).device
    encoder = model.base_model
    dim = int(model.config.hidden_size)
    cls = np.zeros((len(seqs), dim), dtype=np.float32)
    mean = np.zeros((len(seqs), dim), dtype=np.float32)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = padded_batch(seqs, idx, pad)
            ids, mask = ids.to(device), mask.to(device)
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            m = mask.unsqueeze(-1).to(hidden.dtype)
            cls[idx] = hidden[:, 0].cpu().numpy()
            mean[idx] = ((hidden * m).sum(1) / m.sum(1)).cpu().numpy()
    model.train(was_training)
    if not (np.isfinite(cls).all() and np.isfinite(mean).all()):
        from core.trainers.guards import NonFiniteError

        raise NonFiniteError("encoder_states: non-finite encoder states")
    return {"cls": cls, "mean": mean, "n_tokens": np.asarray([len(s) for s in seqs], dtype=np.int64)}
