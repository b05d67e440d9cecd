"""MT-Bench human judgements (``lmsys/mt_bench_human_judgments``, split ``human``) -> pairs.

Record: ``question_id, model_a, model_b, winner, judge, conversation_a, conversation_b, turn``.
Each record judges the conversations up to turn ``turn`` (its first ``2*turn`` messages);
winner ``model_a``/``model_b`` gives the pair (shared prompt = the common opening messages, so
a turn-2 pair carries both assistant turns), ``tie`` and ``tie (bothbad)`` are excluded and
counted. ``domain`` = MT-Bench's category of the question (ids 81-160, ten per category).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.data.formats._common import RecordContext, as_text, require, split_conversations
from core.data.schema import RowError

OPTIONS: frozenset[str] = frozenset()
HUB_SPLIT = "human"
TIES: frozenset[str] = frozenset({"tie", "tie (bothbad)"})
CATEGORIES: tuple[str, ...] = (
    "writing",
    "roleplay",
    "reasoning",
    "math",
    "coding",
    "extraction",
    "stem",
    "humanities",
)


def category(question_id: int) -> str | None:
    """MT-Bench category of a question id (81-90 writing, ..., 151-160 humanities)."""
    k = (question_id - 81) // 10
    return CATEGORIES[k] if 0 <= k < len(CATEGORIES) else None


QUESTION_RECORD = (
    "an MT-Bench question (question_id, category, turns), not a human judgement: format "
    "'mt-bench-human' reads lmsys/mt_bench_human_judgments (split human), whose records carry "
    "model_a, model_b, winner, conversation_a, conversation_b, turn"
)


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """One judgement -> zero (tie) or one pair for its turn."""
    if "turns" in record and "conversation_a" not in record:
        raise RowError(QUESTION_RECORD)
    qid, model_a, model_b, winner, conv_a, conv_b, turn = require(
        record,
        "question_id",
        "model_a",
        "model_b",
        "winner",
        "conversation_a",
        "conversation_b",
        "turn",
    )
    winner = as_text(winner, "winner")
    if winner in TIES:
        ctx.report.n_ties += 1
        return []
    if winner not in ("model_a", "model_b"):
        raise RowError(f"field 'winner' must be model_a, model_b, tie or 'tie (bothbad)', got {winner!r}")
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise RowError(f"field 'turn' must be a positive integer, got {turn!r}")
    for key, conv in (("conversation_a", conv_a), ("conversation_b", conv_b)):
        if not isinstance(conv, list) or len(conv) < 2 * turn:
            raise RowError(f"field '{key}' has fewer than {2 * turn} messages for turn {turn}")
    if winner == "model_a":
        prompt, chosen, rejected = split_conversations(
            conv_a[: 2 * turn], conv_b[: 2 * turn], "conversation_a", "conversation_b"
        )
    else:
        prompt, chosen, rejected = split_conversations(
            conv_b[: 2 * turn], conv_a[: 2 * turn], "conversation_b", "conversation_a"
        )
    judge = record.get("judge") or "unknown"
    qid_int = int(qid) if isinstance(qid, int | str) and str(qid).isdigit() else None
    return [
        {
            "id": f"mtb-{qid}-t{turn}-{model_a}-vs-{model_b}-{judge}",
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "source": "mt-bench-human",
            "domain": category(qid_int) if qid_int is not None else None,
        }
    ]
