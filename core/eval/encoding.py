"""Normalised preference rows -> token ids: the single encoding rule every evaluation uses.

Rows follow docs/design.md §2: ``prompt``, ``chosen``, ``rejected`` are strings or lists of chat
messages ``{role, content}``; other scalar columns (``id``, ``subset``, ``domain``, ``turn`` ...)
are carried along as per-example metadata.

Encoding of ``(prompt, completion)`` (it mirrors trl 1.12's RewardTrainer/DPOTrainer preprocessing,
so an evaluation sees the sequences training saw):

* **Chat template** — when the prompt or the completion is a message list *and* the tokenizer has a
  ``chat_template``: ``prompt_ids = apply_chat_template(prompt, add_generation_prompt=True)`` and
  ``full_ids = apply_chat_template(prompt + completion)``.  A string prompt becomes one ``user``
  message, a string completion one ``assistant`` message.  No EOS is added (the template decides).
* **Plain concatenation** — otherwise ``full_text = text(prompt) + text(completion)`` plus the
  tokenizer's ``eos_token`` (when ``add_eos`` and the completion does not already end with it),
  tokenised with ``tokenizer(text)`` (default special tokens, as trl).  Without a template a
  message list is rendered as plain text: a prompt as each message's content followed by ``"\\n"``,
  a completion as the contents joined by ``"\\n"``.
* **Response tokens** are ``full_ids[start:]`` with ``start`` the length of the longest common prefix
  of ``prompt_ids`` and ``full_ids`` (a token merged across the boundary counts as response).
* **Truncation** to ``max_length`` tokens: ``"keep_end"`` (default) drops the earliest tokens (the
  prompt first, so the response and the last token a reward model reads survive); ``"keep_start"``
  drops the latest tokens (trl's default).  Every sequence records whether it was truncated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "TEXT_KEYS",
    "TRUNCATION_MODES",
    "EncodedPairs",
    "EncodedSequence",
    "encode_completion",
    "encode_pairs",
    "encode_prompt",
    "length_sorted_batches",
    "pad_sequences",
    "resolve_pad_id",
    "rows_from",
]

TEXT_KEYS = ("prompt", "chosen", "rejected")
TRUNCATION_MODES = ("keep_end", "keep_start")


@dataclass(frozen=True)
class EncodedSequence:
    """Token ids of ``prompt + completion``; ``ids[start:]`` are the completion's tokens."""

    ids: tuple[int, ...]
    start: int
    truncated: bool = False

    @property
    def n_response(self) -> int:
        return len(self.ids) - self.start


@dataclass
class EncodedPairs:
    """Encoded chosen/rejected sequences of a preference set plus per-row metadata."""

    chosen: list[EncodedSequence]
    rejected: list[EncodedSequence]
    meta: list[dict[str, Any]] = field(default_factory=list)
    source: str = "rows"

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def n_truncated(self) -> int:
        return sum(c.truncated or r.truncated for c, r in zip(self.chosen, self.rejected, strict=True))


def _plain(value: Any) -> Any:
    """numpy containers/scalars (e.g. from parquet via pandas) -> plain Python."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def rows_from(data: Any, source: str = "rows") -> list[dict[str, Any]]:
    """Rows of a ``datasets.Dataset``, a pandas DataFrame or an iterable of mappings, as dicts."""
    if hasattr(data, "to_dict") and hasattr(data, "columns") and not hasattr(data, "features"):
        records: Iterable[Any] = data.to_dict(orient="records")  # pandas
    else:
        records = data
    rows = []
    for i, row in enumerate(records):
        if not isinstance(row, Mapping):
            raise ValueError(f"{source}: row {i} is a {type(row).__name__}, expected a mapping")
        rows.append({k: _plain(v) for k, v in row.items()})
    return rows


def _where(source: str, index: int, row: Mapping[str, Any], key: str) -> str:
    rid = row.get("id")
    return f"{source}: row {index}" + (f" (id={rid!r})" if rid is not None else "") + f", key {key!r}"


def _check_text(value: Any, where: str, allow_empty: bool) -> None:
    if isinstance(value, str):
        if not allow_empty and not value:
            raise ValueError(f"{where}: empty text")
        return
    if isinstance(value, list):
        if not value and not allow_empty:
            raise ValueError(f"{where}: empty message list")
        for j, msg in enumerate(value):
            if not (
                isinstance(msg, Mapping) and isinstance(msg.get("role"), str) and isinstance(msg.get("content"), str)
            ):
                raise ValueError(
                    f"{where}: message {j} must be a mapping with string 'role' and 'content', got {msg!r}"
                )
        return
    raise ValueError(f"{where}: expected a string or a list of {{role, content}} messages, got {type(value).__name__}")


def _validate_row(row: Mapping[str, Any], index: int, source: str) -> None:
    for key in TEXT_KEYS:
        if key not in row or row[key] is None:
            raise ValueError(f"{_where(source, index, row, key)}: missing (expected columns {TEXT_KEYS})")
        _check_text(row[key], _where(source, index, row, key), allow_empty=(key == "prompt"))


def _chat_ids(tokenizer: Any, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    if not messages:
        return []
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
    )
    ids = out["input_ids"] if isinstance(out, Mapping) or hasattr(out, "keys") else out
    if ids and isinstance(ids[0], list):  # a batch of one
        ids = ids[0]
    return [int(t) for t in ids]


def _as_messages(value: str | list, role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}] if value else []
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _prompt_text(prompt: str | list) -> str:
    return prompt if isinstance(prompt, str) else "".join(m["content"] + "\n" for m in prompt)


def _completion_text(completion: str | list) -> str:
    return completion if isinstance(completion, str) else "\n".join(m["content"] for m in completion)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _truncate(ids: list[int], start: int, max_length: int | None, mode: str) -> EncodedSequence:
    if max_length is None or len(ids) <= max_length:
        return EncodedSequence(tuple(ids), start, False)
    if mode == "keep_end":
        cut = len(ids) - max_length
        return EncodedSequence(tuple(ids[cut:]), max(start - cut, 0), True)
    return EncodedSequence(tuple(ids[:max_length]), min(start, max_length), True)


def _full_and_prompt_ids(
    tokenizer: Any, prompt: str | list, completion: str | list, add_eos: bool
) -> tuple[list[int], list[int]]:
    conversational = isinstance(prompt, list) or isinstance(completion, list)
    if conversational and getattr(tokenizer, "chat_template", None):
        p_msgs = _as_messages(prompt, "user")
        full = _chat_ids(tokenizer, p_msgs + _as_messages(completion, "assistant"), False)
        return full, _chat_ids(tokenizer, p_msgs, True)
    p_text = _prompt_text(prompt)
    c_text = _completion_text(completion)
    eos = getattr(tokenizer, "eos_token", None)
    if add_eos and eos and not c_text.endswith(eos):
        c_text = c_text + eos
    full = list(tokenizer(p_text + c_text)["input_ids"])
    prompt_ids = list(tokenizer(p_text)["input_ids"]) if p_text else []
    return full, prompt_ids


def encode_completion(
    tokenizer: Any,
    prompt: str | list,
    completion: str | list,
    *,
    add_eos: bool = True,
    max_length: int | None = None,
    truncation: str = "keep_end",
    where: str = "completion",
) -> EncodedSequence:
    """Encode one ``(prompt, completion)`` by the module's rule; ValueError if no response token remains."""
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {truncation!r}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be >= 2 (or None), got {max_length}")
    full, prompt_ids = _full_and_prompt_ids(tokenizer, prompt, completion, add_eos)
    start = _common_prefix(prompt_ids, full)
    if start >= len(full):
        raise ValueError(f"{where}: the completion encodes to no tokens")
    seq = _truncate(full, start, max_length, truncation)
    if seq.n_response <= 0:
        raise ValueError(
            f"{where}: truncation {truncation!r} to max_length={max_length} removed every "
            f"completion token (prompt has {start} tokens)"
        )
    return seq


def encode_pairs(
    data: Any,
    tokenizer: Any,
    *,
    max_length: int | None = None,
    truncation: str = "keep_end",
    add_eos: bool = True,
    source: str = "rows",
) -> EncodedPairs:
    """Validate and encode every row's ``prompt+chosen`` and ``prompt+rejected`` (module rule)."""
    rows = rows_from(data, source)
    chosen, rejected, meta = [], [], []
    for i, row in enumerate(rows):
        _validate_row(row, i, source)
        for key, out in (("chosen", chosen), ("rejected", rejected)):
            out.append(
                encode_completion(
                    tokenizer,
                    row["prompt"],
                    row[key],
                    add_eos=add_eos,
                    max_length=max_length,
                    truncation=truncation,
                    where=_where(source, i, row, key),
                )
            )
        meta.append(
            {
                k: v
                for k, v in row.items()
                if k not in TEXT_KEYS and (v is None or isinstance(v, str | int | float | bool))
            }
        )
    return EncodedPairs(chosen, rejected, meta, source)


def encode_prompt(tokenizer: Any, prompt: str | list, max_length: int | None = None) -> list[int]:
    """Prompt ids for generation (chat template with generation prompt, else plain text), keeping
    the last ``max_length`` tokens when given."""
    if isinstance(prompt, list) and getattr(tokenizer, "chat_template", None):
        ids = _chat_ids(tokenizer, _as_messages(prompt, "user"), True)
    else:
        ids = list(tokenizer(_prompt_text(prompt))["input_ids"])
    if not ids:
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            raise ValueError("an empty prompt needs a tokenizer with a bos_token to start generation")
        ids = [int(bos)]
    return ids[-max_length:] if max_length else ids


def resolve_pad_id(tokenizer: Any, model: Any = None) -> int:
    """Padding id: the model config's ``pad_token_id`` if set (so sequence-classification pooling
    finds it), else the tokenizer's pad token, else its EOS token."""
    cfg = getattr(model, "config", None)
    for candidate in (
        getattr(cfg, "pad_token_id", None),
        getattr(tokenizer, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(candidate, int):
            return candidate
    raise ValueError("no padding id: set tokenizer.pad_token (or eos_token) or model.config.pad_token_id")


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right"):
    """``(input_ids, attention_mask)`` long tensors padded on ``side`` ("right" or "left")."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "right":
            ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, : len(s)] = 1
        else:
            ids[i, width - len(s) :] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (stable sort, longest first) to limit padding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
