"""Normalised preference rows -> token ids: the single encoding rule of training and evaluation.

Rows follow docs/design.md §2: ``prompt``, ``chosen``, ``rejected`` are strings or lists of chat
messages ``{role, content}``; other scalar columns (``id``, ``subset``, ``domain``, ``turn`` ...)
are carried along as per-example metadata.

Encoding of ``(prompt, completion)`` (:func:`encode_example`; the reward models, the DPO family's
implicit rewards, likelihood scoring and the oracle all read it, and :func:`training_rows` hands
trl 1.12's RewardTrainer/DPOTrainer/SFTTrainer rows that trl tokenises to the same ids):

* **Chat template** — whenever the tokenizer has a ``chat_template``: a string prompt becomes one
  ``user`` message and a string completion one ``assistant`` message (as official RewardBench,
  ``rewardbench/utils.py: prepare_dialogue_from_tokenizer``); message lists are kept.  Consecutive
  turns of the same role are merged into one (contents joined by ``MERGE_JOINER``, ``"\\n\\n"``)
  and counted, so strict-alternation templates (gemma's) never stop an evaluation; a prompt whose
  last turn merges with the completion's first hands that turn to the completion.  Then
  ``full_ids = apply_chat_template(prompt + completion)`` — token for token what
  ``tokenizer.apply_chat_template`` gives for those messages — and ``prompt_ids =
  apply_chat_template(prompt, add_generation_prompt=True)``.  No EOS is added (the template decides).
* **No template** — ``full_text = text(prompt) + sep + text(completion)`` plus the tokenizer's
  ``eos_token`` (when ``add_eos`` and the completion does not already end with it), tokenised with
  ``tokenizer(text)`` (default special tokens, as trl).  ``sep`` is ``NO_TEMPLATE_SEPARATOR`` (one
  space) when the prompt is non-empty and neither the prompt ends nor the completion starts with
  whitespace, else nothing: texts that already meet at whitespace (``"...Assistant:" + " reply"``,
  ``"Q: " + "A"``, a rendered message list) are joined unchanged, and ``"...a small woman?" +
  "Sorry"`` becomes ``"...a small woman? Sorry"``.  The separator belongs to the completion.  A message list is
  rendered as plain text: a prompt as each message's content followed by ``"\\n"``, a completion as
  the contents joined by ``"\\n"``.  A generation prompt ends with the separator and a sampled
  completion starts with it (:func:`prompt_separator`), so a sample reads as its own text.
* **Response tokens** are ``full_ids[start:]`` with ``start`` the length of the longest common prefix
  of ``prompt_ids`` and ``full_ids`` (a token merged across the boundary counts as response).
* **Truncation** to ``max_length`` tokens: ``"keep_end"`` (default) drops the earliest tokens (the
  prompt first, so the response and the last token a reward model reads survive); ``"keep_start"``
  drops the latest tokens (trl's default); ``"encoder"`` (an encoder's classifier, which pools its
  first token) keeps the first token, the prompt's start and the response's start, the prompt cut
  to what the response leaves but never below half of the room while the response needs it.  Every
  sequence records whether it was truncated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "MERGE_JOINER",
    "NO_TEMPLATE_SEPARATOR",
    "TEXT_KEYS",
    "TRUNCATION_MODES",
    "Batching",
    "EncodedPairs",
    "EncodedSequence",
    "chat_conversation",
    "encode_completion",
    "encode_example",
    "encode_pairs",
    "encode_prompt",
    "has_chat_template",
    "length_sorted_batches",
    "pad_sequences",
    "prompt_separator",
    "resolve_pad_id",
    "merge_turns",
    "stop_token_ids",
    "rows_from",
    "training_rows",
]

log = logging.getLogger(__name__)

TEXT_KEYS = ("prompt", "chosen", "rejected")
TRUNCATION_MODES = ("keep_end", "keep_start", "encoder")


def default_truncation(tokenizer: Any) -> str:
    """``encoder`` for an encoder's tokenizer (it has a [CLS]-style token: the classifier pools
    the first position, which ``keep_end`` would cut), else ``keep_end`` (a causal LM's reward or
    log-probs read the end of the response)."""
    return "encoder" if getattr(tokenizer, "cls_token", None) else "keep_end"


#: joins the contents of consecutive same-role turns merged into one message
MERGE_JOINER = "\n\n"
#: joins a prompt and a completion that do not already meet at whitespace (no chat template)
NO_TEMPLATE_SEPARATOR = " "


@dataclass(frozen=True)
class EncodedSequence:
    """Token ids of ``prompt + completion``; ``ids[start:]`` are the completion's tokens."""

    ids: tuple[int, ...]
    start: int
    truncated: bool = False
    merged_turns: int = 0

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

    @property
    def n_merged_turns(self) -> int:
        """Same-role turns merged into their predecessor, over every chosen and rejected sequence."""
        return sum(s.merged_turns for s in self.chosen + self.rejected)


def _python_values(value: Any) -> Any:
    """numpy containers/scalars (e.g. from parquet via pandas) -> plain Python."""
    if isinstance(value, np.ndarray):
        return [_python_values(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_python_values(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _python_values(v) for k, v in value.items()}
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
        rows.append({k: _python_values(v) for k, v in row.items()})
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


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (the rule then renders every row through it)."""
    return bool(getattr(tokenizer, "chat_template", None))


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The ids that end an assistant turn: the tokenizer's eos, then the first special token its
    chat template writes after an assistant message's content where that is another token (gemma's
    ``<end_of_turn>``, ChatML's ``<|im_end|>``, Llama 3's ``<|eot_id|>``): generation stops at
    either, so a response does not run on past its turn to the length cap."""
    ids = [] if getattr(tokenizer, "eos_token_id", None) is None else [int(tokenizer.eos_token_id)]
    if not has_chat_template(tokenizer):
        return ids
    mark = "\u2591reply\u2591"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": mark}],
                                             tokenize=False)  # fmt: skip
    except Exception:  # a template that refuses this conversation: eos only  # noqa: BLE001
        return ids
    if not isinstance(text, str) or mark not in text:
        return ids
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(tokenizer.get_added_vocab().values())
    suffix = tokenizer(text.split(mark, 1)[1], add_special_tokens=False)["input_ids"]
    end = next((int(t) for t in suffix if int(t) in special), None)
    return ids + ([end] if end is not None and end not in ids else [])


def _as_messages(value: str | list, role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}] if value else []
    return [{"role": m["role"], "content": m["content"]} for m in value]


def merge_turns(messages: Sequence[Mapping[str, str]]) -> tuple[list[dict], int]:
    """``messages`` with every run of consecutive same-role turns merged into one (contents joined by
    ``MERGE_JOINER``), and the number of turns merged away."""
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            out[-1] = {"role": m["role"], "content": out[-1]["content"] + MERGE_JOINER + m["content"]}
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out, len(messages) - len(out)


def chat_conversation(prompt: str | list, completion: str | list) -> tuple[list[dict], list[dict], int]:
    """``(prompt messages, completion messages, turns merged)`` as the chat-template rule sees a row:
    a string prompt is one ``user`` message, a string completion one ``assistant`` message, same-role
    runs are merged, and a prompt's last turn that merges with the completion's first moves to it."""
    p, n_p = merge_turns(_as_messages(prompt, "user"))
    c, n_c = merge_turns(_as_messages(completion, "assistant"))
    merged = n_p + n_c
    if p and c and p[-1]["role"] == c[0]["role"]:
        last = p.pop()
        c[0] = {"role": last["role"], "content": last["content"] + MERGE_JOINER + c[0]["content"]}
        merged += 1
    return p, c, merged


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
    if mode == "encoder" and start > 0:
        room = max_length - 1  # after the first token
        response = len(ids) - start
        prompt = max(start - 1, 0)
        keep_prompt = min(prompt, max(room - response, room // 2))
        keep_response = min(response, room - keep_prompt)
        out = ids[:1] + ids[1 : 1 + keep_prompt] + ids[start : start + keep_response]
        return EncodedSequence(tuple(out), 1 + keep_prompt, True)
    if mode == "keep_end":
        cut = len(ids) - max_length
        return EncodedSequence(tuple(ids[cut:]), max(start - cut, 0), True)
    return EncodedSequence(tuple(ids[:max_length]), min(start, max_length), True)


def prompt_separator(tokenizer: Any, prompt: str | list) -> str:
    """What a generation prompt ends with and a sampled completion starts with under the rule:
    ``NO_TEMPLATE_SEPARATOR`` without a chat template when the prompt's text is non-empty and does not
    end with whitespace, else ``""`` (:func:`encode_prompt`, ``core.eval.generation``)."""
    if has_chat_template(tokenizer):
        return ""
    text = _prompt_text(prompt)
    return NO_TEMPLATE_SEPARATOR if text and not text[-1].isspace() else ""


def _separator(prompt_text: str, completion_text: str) -> str:
    if prompt_text and completion_text and not prompt_text[-1].isspace() and not completion_text[0].isspace():
        return NO_TEMPLATE_SEPARATOR
    return ""


def _plain_texts(prompt: str | list, completion: str | list, eos: str | None) -> tuple[str, str]:
    """(prompt text, completion text with its separator and EOS) of the no-template rule."""
    p_text = _prompt_text(prompt)
    c_text = _completion_text(completion)
    c_text = _separator(p_text, c_text) + c_text
    if eos and not c_text.endswith(eos):
        c_text = c_text + eos
    return p_text, c_text


def _full_and_prompt_ids(
    tokenizer: Any, prompt: str | list, completion: str | list, add_eos: bool
) -> tuple[list[int], list[int], int]:
    if has_chat_template(tokenizer):
        p_msgs, c_msgs, merged = chat_conversation(prompt, completion)
        return _chat_ids(tokenizer, p_msgs + c_msgs, False), _chat_ids(tokenizer, p_msgs, True), merged
    p_text, c_text = _plain_texts(prompt, completion, getattr(tokenizer, "eos_token", None) if add_eos else None)
    full = list(tokenizer(p_text + c_text)["input_ids"])
    prompt_ids = list(tokenizer(p_text)["input_ids"]) if p_text else []
    return full, prompt_ids, 0


def encode_example(tokenizer: Any, prompt: str | list, completion: str | list, *, add_eos: bool = True) -> list[int]:
    """Token ids of ``prompt + completion`` by the module's rule: with a chat template exactly
    ``tokenizer.apply_chat_template(messages)`` of the row's (merged) user/assistant messages, else
    the separated plain text plus EOS."""
    return _full_and_prompt_ids(tokenizer, prompt, completion, add_eos)[0]


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
    full, prompt_ids, merged = _full_and_prompt_ids(tokenizer, prompt, completion, add_eos)
    start = _common_prefix(prompt_ids, full)
    if start >= len(full):
        raise ValueError(f"{where}: the completion encodes to no tokens")
    seq = replace(_truncate(full, start, max_length, truncation), merged_turns=merged)
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
    enc = EncodedPairs(chosen, rejected, meta, source)
    if enc.n_merged_turns:
        log.warning("%s: %d same-role turn(s) merged into the turn before (encoding rule)", source, enc.n_merged_turns)
    return enc


def _training_row(
    row: Mapping[str, Any], completions: Sequence[str], tokenizer: Any, add_eos: bool, index: int
) -> dict[str, Any]:
    """One row's prompt and completions in the form trl tokenises to :func:`encode_example`'s ids
    (a prompt alone, ``completions=()``: its merged messages with a template, else as it is)."""
    if not completions:
        prompt = row["prompt"]
        return {"prompt": merge_turns(_as_messages(prompt, "user"))[0] if has_chat_template(tokenizer) else prompt}
    out: dict[str, Any] = {}
    for key in completions:
        if has_chat_template(tokenizer):
            prompt, completion, _ = chat_conversation(row["prompt"], row[key])
        else:
            eos = getattr(tokenizer, "eos_token", None) if add_eos else None
            prompt, completion = _plain_texts(row["prompt"], row[key], eos)
        if "prompt" in out and out["prompt"] != prompt:
            raise ValueError(
                f"training row {index}: '{completions[0]}' and '{key}' split the prompt differently "
                "(their first turns differ in role); give them completions that start on the same role"
            )
        out["prompt"], out[key] = prompt, completion
    return out


def training_rows(
    data: Any, tokenizer: Any, completions: Sequence[str] = ("chosen", "rejected"), *, add_eos: bool = True
) -> Any:
    """``data`` (a ``datasets.Dataset``) with ``prompt`` and the ``completions`` columns rewritten so
    that trl 1.12's trainers tokenise every row to the ids :func:`encode_example` gives: with a chat
    template the (merged) user/assistant message lists trl sends through ``apply_chat_template``, else
    plain texts with the separator and EOS already in the completion.  With ``completions=()`` only
    the prompts are rewritten (PPO's prompt set).  Other columns are kept."""
    cols = ["prompt", *completions]
    missing = [c for c in cols if c not in data.column_names]
    if missing:
        raise ValueError(f"training data has no column(s) {missing}; columns are {data.column_names}")
    return data.map(
        lambda row, i: _training_row(row, completions, tokenizer, add_eos, i),
        with_indices=True,
        remove_columns=cols,
    )


def encode_prompt(tokenizer: Any, prompt: str | list, max_length: int | None = None) -> list[int]:
    """Prompt ids for generation, keeping the last ``max_length`` tokens when given: with a chat
    template the (merged) prompt messages with the generation prompt (a string is one user message),
    else the prompt's plain text followed by :func:`prompt_separator`."""
    if has_chat_template(tokenizer):
        ids = _chat_ids(tokenizer, merge_turns(_as_messages(prompt, "user"))[0], True)
    else:
        ids = list(tokenizer(_prompt_text(prompt) + prompt_separator(tokenizer, prompt))["input_ids"])
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


@dataclass(frozen=True)
class Batching:
    """A scoring batch's bounds: at most ``rows`` sequences and, when ``tokens`` is set, at most
    ``tokens`` padded positions (rows x the batch's longest sequence; a longer sequence than
    ``tokens`` is scored alone). The config's ``eval.batch_size`` and ``eval.max_batch_tokens``."""

    rows: int
    tokens: int | None = None

    def __post_init__(self) -> None:
        if self.rows < 1 or (self.tokens is not None and self.tokens < 1):
            raise ValueError(f"Batching needs rows >= 1 and tokens >= 1 (or None), got {self}")

    @classmethod
    def of(cls, ev: Mapping[str, Any], rows: int | None = None) -> Batching:
        """The ``eval`` config block's bounds (``rows`` caps its ``batch_size``)."""
        tokens = ev.get("max_batch_tokens")
        size = int(ev["batch_size"]) if rows is None else min(int(rows), int(ev["batch_size"]))
        return cls(size, None if tokens is None else int(tokens))


def length_sorted_batches(lengths: Sequence[int], batch_size: int | Batching) -> list[list[int]]:
    """Indices grouped into batches of similar length (stable sort, longest first) to limit padding,
    each of at most ``batch_size`` rows (an int, or a :class:`Batching`, which also bounds its
    padded tokens: a batch starting at a sequence of length ``L`` holds ``max(1, tokens // L)`` rows)."""
    limit = batch_size if isinstance(batch_size, Batching) else Batching(int(batch_size))
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = limit.rows if limit.tokens is None else max(1, min(limit.rows, limit.tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches
