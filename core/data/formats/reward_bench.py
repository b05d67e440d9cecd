"""RewardBench (``allenai/reward-bench``, split ``filtered``) -> normalised pairs.

Record: ``prompt, chosen, rejected, subset, id`` (plus ``chosen_model, rejected_model``).
``source`` = the subset (RewardBench scores per subset), ``domain`` = its section (chat,
chat-hard, safety, reasoning) as the official leaderboard groups them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.data.formats._common import RecordContext, as_text, require
from core.vocab import REWARDBENCH_SECTIONS

OPTIONS: frozenset[str] = frozenset()
HUB_SPLIT = "filtered"

#: subset -> its section as a ``domain`` value: ``core.vocab.REWARDBENCH_SECTIONS``' names in
#: lower case, spaces as hyphens (chat, chat-hard, safety, reasoning).
SECTION_OF: dict[str, str] = {
    subset: section.lower().replace(" ", "-") for section, subsets in REWARDBENCH_SECTIONS.items() for subset in subsets
}


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """One RewardBench record -> one pair (unknown subsets get ``domain=None``)."""
    prompt, chosen, rejected, subset = require(record, "prompt", "chosen", "rejected", "subset")
    subset = as_text(subset, "subset")
    record_id = record.get("id")
    return [
        {
            "id": str(record_id) if record_id is not None else f"rb-{ctx.index}",
            "prompt": as_text(prompt, "prompt"),
            "chosen": as_text(chosen, "chosen"),
            "rejected": as_text(rejected, "rejected"),
            "source": subset,
            "domain": SECTION_OF.get(subset),
        }
    ]
