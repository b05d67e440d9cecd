"""Length-bucketed forward passes: less compute spent on padding, the same outputs.

A training batch is padded to its longest row; on the embedded default a reward batch of 64
sequences (32 pairs) is ~56% real tokens (benchmarks/step_cost.py), so almost half of every
matmul and attention is spent on padding. :func:`bucket_forward` makes a model split each
right-padded ``(input_ids, attention_mask)`` batch into ``k`` chunks of rows sorted by length, run
each chunk cut to its own longest row, and put the rows back in their order:

* a sequence classifier's ``logits`` ``[B, 1]`` are the rows' own outputs;
* a causal LM's ``logits`` ``[B, T, V]`` are the rows' outputs at their tokens; padded positions
  hold other values than the plain forward's (zeros past a chunk's width), which every loss masks
  out.

Each row's output is its unbatched output, so the results equal the one-chunk forward up to float
rounding (other matmul shapes: tests/test_bucketing.py checks 1e-5). Every other call (generation
with a cache, left padding, position ids, hidden states asked for, one chunk) goes to the model's
own forward unchanged. The model keeps its class name (the saved ``config.architectures`` and a
reload are those of the plain model) and ``copy.deepcopy`` keeps the bucketing.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["bucket_forward", "length_buckets"]

_PLAIN_KWARGS = frozenset({"use_cache", "return_dict"})
_CLASSES: dict[type, type] = {}


def _right_padded(mask: torch.Tensor) -> bool:
    """Every row's mask is ones then zeros."""
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


class _LengthBuckets:
    """Marker base of the classes :func:`bucket_forward` makes (their ``forward`` is :func:`_forward`)."""

    _length_buckets: int = 1


def _forward(model: Any, plain: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    """``plain(*args, **kwargs)`` (the class's own forward, bound), in length buckets when it can."""
    if len(args) > 2:
        return plain(*args, **kwargs)
    kwargs = dict(kwargs, **dict(zip(("input_ids", "attention_mask"), args, strict=False)))
    input_ids, attention_mask = kwargs.pop("input_ids", None), kwargs.pop("attention_mask", None)
    k = model._length_buckets
    if (
        k < 2
        or input_ids is None
        or attention_mask is None
        or input_ids.dim() != 2
        or input_ids.shape[0] < 2
        or set(kwargs) - _PLAIN_KWARGS
        or kwargs.get("use_cache")
        or not _right_padded(attention_mask)
    ):
        return plain(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    lengths = attention_mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    width = input_ids.shape[1]
    chunks = [idx for idx in torch.tensor_split(order, min(k, input_ids.shape[0])) if len(idx)]
    outputs, full = None, None
    for idx in chunks:
        cut = max(int(lengths[idx].max()), 1)
        out = plain(input_ids=input_ids[idx, :cut], attention_mask=attention_mask[idx, :cut], **kwargs)
        logits = out.logits
        if full is None:  # [B, 1] (classifier) or [B, width, V] (causal LM, zeros past each chunk's width)
            rows = input_ids.shape[0]
            full = logits.new_zeros((rows, width, logits.shape[-1]) if logits.dim() == 3 else (rows, *logits.shape[1:]))
            outputs = out
        if logits.dim() == 3:
            full[idx, :cut] = logits
        else:
            full[idx] = logits
    outputs["logits"] = full
    if "past_key_values" in outputs:
        outputs["past_key_values"] = None
    return outputs


def _bucketed_class(cls: type) -> type:
    """``cls`` with a bucketing ``forward`` (same name, module and signature as ``cls``'s)."""
    if cls not in _CLASSES:
        plain_forward = cls.forward

        @functools.wraps(plain_forward)
        def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _forward(self, plain_forward.__get__(self), args, kwargs)

        made = type(cls.__name__, (_LengthBuckets, cls), {"forward": forward, "__module__": cls.__module__})
        made.__qualname__ = cls.__qualname__
        _CLASSES[cls] = made
    return _CLASSES[cls]


def _inner(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (its forward is the one the adapters call)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def bucket_forward(model: Any, buckets: int) -> Any:
    """Make ``model`` (or the model under its PEFT wrapper) run right-padded batches in ``buckets``
    length-sorted chunks; ``buckets`` 1 leaves it unchanged. Returns ``model``."""
    if int(buckets) < 1:
        raise ValueError(f"length_buckets must be >= 1, got {buckets}")
    inner = _inner(model)
    if int(buckets) > 1 or isinstance(inner, _LengthBuckets):
        if not isinstance(inner, _LengthBuckets):
            inner.__class__ = _bucketed_class(inner.__class__)
        inner._length_buckets = int(buckets)
    return model


def length_buckets(model: Any) -> int:
    """The number of chunks ``model`` splits a batch into (1: plain forward)."""
    inner = _inner(model)
    return int(inner._length_buckets) if isinstance(inner, _LengthBuckets) else 1
