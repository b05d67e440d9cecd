"""Anthropic HH-RLHF (``Anthropic/hh-rlhf``, ``*.jsonl.gz``) -> normalised pairs.

Record: ``chosen``, ``rejected`` full transcripts ``"\\n\\nHuman: ..\\n\\nAssistant: .."``. The
shared prompt is split off at the last Assistant turn the two transcripts share: prompt = the text
up to and including the last ``"\\n\\nAssistant:"`` inside their common prefix, chosen/rejected =
what follows (so ``prompt + chosen`` is the original transcript; a final reply that itself contains
``"\\n\\nAssistant:"`` stays whole). Transcripts that differ before that turn (no shared Assistant
turn, or a Human turn after it) are bad rows. With
``as_messages=True`` the prompt becomes user/assistant messages and each completion one
assistant message. ``source`` = ``hh-rlhf`` or ``hh-rlhf/<subfolder>`` (e.g. harmless-base).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from core.data.formats._common import RecordContext, as_text, content_id, require
from core.data.schema import RowError

OPTIONS: frozenset[str] = frozenset({"as_messages"})
HUB_SPLIT = "train"
ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"
DIFFER = "chosen and rejected transcripts differ before the last Assistant turn"
_TURN = re.compile(r"\n\n(Human|Assistant):")


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(shared prompt up to and including the last Assistant marker of the transcripts' common
    prefix, chosen reply, rejected reply); RowError when the transcripts share no such turn or a
    reply holds a Human turn (they differ earlier)."""
    for key, text in (("chosen", chosen), ("rejected", rejected)):
        if ASSISTANT not in text:
            raise RowError(f"field '{key}' has no '\\n\\nAssistant:' turn")
    cut = os.path.commonprefix([chosen, rejected]).rfind(ASSISTANT)
    if cut < 0:
        raise RowError(DIFFER)
    cut += len(ASSISTANT)
    if HUMAN in chosen[cut:] or HUMAN in rejected[cut:]:
        raise RowError(DIFFER)
    return chosen[:cut], chosen[cut:], rejected[cut:]


def transcript_messages(prompt: str) -> list[dict[str, str]]:
    """User/assistant messages of a prompt transcript (the trailing empty Assistant turn dropped)."""
    pieces = _TURN.split(prompt)
    if pieces[0].strip():
        raise RowError("text before the first '\\n\\nHuman:' turn")
    messages = [
        {"role": "user" if role == "Human" else "assistant", "content": content.strip()}
        for role, content in zip(pieces[1::2], pieces[2::2], strict=True)
    ]
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def _source(ctx: RecordContext) -> str:
    if ctx.path is not None and ctx.root is not None and ctx.path.parent != ctx.root:
        return f"hh-rlhf/{ctx.path.parent.relative_to(ctx.root).as_posix()}"
    return "hh-rlhf"


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """One HH record -> one pair split at the last Assistant turn the transcripts share."""
    chosen_t, rejected_t = require(record, "chosen", "rejected")
    chosen_t, rejected_t = as_text(chosen_t, "chosen"), as_text(rejected_t, "rejected")
    prompt, chosen, rejected = split_pair(chosen_t, rejected_t)
    row: dict[str, Any] = {
        "id": content_id("hh", chosen_t, rejected_t),
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "source": _source(ctx),
        "domain": None,
    }
    if ctx.options.get("as_messages"):
        row["prompt"] = transcript_messages(prompt)
        row["chosen"] = [{"role": "assistant", "content": chosen.strip()}]
        row["rejected"] = [{"role": "assistant", "content": rejected.strip()}]
    return [row]
