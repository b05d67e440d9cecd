"""HHH alignment (Askell et al. 2021) -> normalised pairs.

Two real shapes: the BIG-bench task (``hhh_alignment/<subset>/task.json``, examples with
``input`` and ``target_scores``) and the hub copy (``HuggingFaceH4/hhh_alignment``, configs
= subsets, rows ``input, targets{choices, labels}``). Every (good, bad) pair of an example
becomes a pair (a strictly higher score/label first). The prompt of a BIG-bench example keeps the
task's ``example_input_prefix`` / ``example_output_prefix`` (``"\\nHuman: " + input +
"\\nAssistant:"``); a hub row's prompt is its ``input`` as the hub holds it. ``source`` =
``hhh_alignment:<subset>`` (BIG-bench's subtask name), ``domain`` = the subset: harmless, helpful,
honest or other: the ``subset`` option, else the hub config a row came from, else the task or file
path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.data.bigbench import TaskInfo, scored_pairs
from core.data.formats._common import RecordContext, as_text, require
from core.data.schema import RowError

OPTIONS: frozenset[str] = frozenset({"subset", "tasks"})
HUB_SPLIT = "test"
SUBSETS: tuple[str, ...] = ("harmless", "helpful", "honest", "other")


def _subset(record: Mapping[str, Any], ctx: RecordContext) -> str:
    if ctx.options.get("subset"):
        return str(ctx.options["subset"])
    if ctx.hub_name in SUBSETS:
        return str(ctx.hub_name)
    info = record.get("__task__")
    parts: list[str] = []
    if isinstance(info, TaskInfo):
        parts = info.name.split(":")[::-1]
    elif ctx.path is not None:
        parts = [ctx.path.name.split(".")[0].split("-")[0], *[p.name for p in ctx.path.parents]]
    for part in parts:
        if part in SUBSETS:
            return part
    raise RowError(
        f"cannot tell the HHH subset (none of {SUBSETS} in the hub config, task or file path); pass subset=..."
    )


def _choice_scores(record: Mapping[str, Any]) -> dict[str, Any]:
    if "target_scores" in record:
        scores = record["target_scores"]
        if not isinstance(scores, dict):
            raise RowError("field 'target_scores' must be an object of choice -> score")
        return scores
    (targets,) = require(record, "targets")
    if not isinstance(targets, Mapping):
        raise RowError("field 'targets' must be an object with 'choices' and 'labels'")
    choices, labels = targets.get("choices"), targets.get("labels")
    if not isinstance(choices, list) or not isinstance(labels, list) or len(choices) != len(labels):
        raise RowError("field 'targets' must hold equal-length lists 'choices' and 'labels'")
    for c in choices:
        as_text(c, "targets.choices[]")
    return dict(zip(choices, labels, strict=True))


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """One HHH example -> every (good, bad) pair of its choices."""
    (prompt,) = require(record, "input")
    prompt = as_text(prompt, "input")
    info = record.get("__task__")
    if isinstance(info, TaskInfo):
        prompt = info.prompt(prompt)
    scores = _choice_scores(record)
    subset = _subset(record, ctx)
    pairs = scored_pairs(scores, mode="all")
    if not pairs:
        ctx.report.n_ties += 1
        return []
    return [
        {
            "id": f"hhh-{subset}-{ctx.index}-{j}",
            "prompt": prompt,
            "chosen": good,
            "rejected": bad,
            "source": f"hhh_alignment:{subset}",
            "chosen_score": float(scores[good]),
            "rejected_score": float(scores[bad]),
            "domain": subset,
        }
        for j, (good, bad) in enumerate(pairs)
    ]
