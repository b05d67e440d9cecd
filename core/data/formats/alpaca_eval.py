"""AlpacaEval annotations (``tatsu-lab/alpaca_eval``, folder ``results/``) -> normalised pairs.

Layout: ``results/<generator>/<annotator>/annotations.json[.gz]``, each a JSON list with one record
per AlpacaEval instruction: ``instruction, dataset, output_1, generator_1, output_2, generator_2,
annotator, preference``. ``output_1`` is the annotator's reference response, ``output_2`` the
evaluated generator's. ``preference`` is the judge's verdict: 1 = ``output_1`` preferred, 2 =
``output_2`` preferred; the weighted GPT-4 Turbo annotator gives a float in [1, 2], the judge's
probability-weighted verdict, ``p(output_2 preferred) = preference - 1``.

One pair per decided verdict: prompt = instruction, chosen = the preferred output (``preference``
above 1.5: ``output_2``, below: ``output_1``), ``source`` = ``domain`` = the prompt source
(``dataset``: helpful_base, koala, oasst, selfinstruct, vicuna). The row keeps the two generators
(``chosen_model``, ``rejected_model``) and the judge's raw ``preference``; ``chosen_score`` /
``rejected_score`` are the judge's probability of each side (1/0 for an integer verdict).

Bad rows (with their reason; the loader's drop rules apply): a ``null`` or ``0`` verdict (the judge
gave none), a verdict outside [1, 2], exactly 1.5 (undecided), an empty output.

Options: ``generators`` (names of evaluated generators to keep: a record's folder
``results/<generator>/`` or its ``generator_2``, which some folders name otherwise) and
``annotator`` (one annotator to keep); the records they leave out are not read (not counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.data.formats._common import RecordContext, as_number, as_text, content_id, require
from core.data.schema import RowError

OPTIONS: frozenset[str] = frozenset({"generators", "annotator"})
HUB_SPLIT = "eval"
#: AlpacaEval's undecided verdict (the weighted annotator's 50/50)
UNDECIDED = 1.5
#: the repository's public home (data/README.md names it for a user with a network)
PUBLIC_SOURCE = "https://github.com/tatsu-lab/alpaca_eval (folder results/)"


def _names(value: Any, key: str) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset([value])
    if not isinstance(value, Sequence) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"alpaca-eval option {key!r}: expected a name or a non-empty list of names, got {value!r}")
    return frozenset(value)


def select(record: Any, options: Mapping[str, Any], path: Path | None = None) -> bool:
    """Whether the options keep ``record`` of file ``path`` (a record that is not an object is kept,
    to be reported)."""
    if not isinstance(record, Mapping):
        return True
    annotator = options.get("annotator")
    if annotator is not None and record.get("annotator") not in _names(annotator, "annotator"):
        return False
    if options.get("generators") is not None:
        names = _names(options["generators"], "generators")
        folder = path.parents[1].name if path is not None and len(path.parents) > 1 else None
        return record.get("generator_2") in names or folder in names
    return True


def convert(record: Mapping[str, Any], ctx: RecordContext) -> list[dict[str, Any]]:
    """One AlpacaEval annotation -> one pair (or RowError with the reason)."""
    if not isinstance(record, Mapping):
        raise RowError(f"an annotation must be a JSON object, got {type(record).__name__}")
    instruction, dataset, out1, out2, gen1, gen2 = require(
        record, "instruction", "dataset", "output_1", "output_2", "generator_1", "generator_2"
    )
    raw = record.get("preference")
    if raw is None:
        raise RowError("no verdict (preference is null)")
    pref = as_number(raw, "preference")
    if pref == 0:
        raise RowError("no verdict (preference is 0)")
    if not 1 <= pref <= 2:
        raise RowError(f"field 'preference' must be in [1, 2], got {raw!r}")
    if pref == UNDECIDED:
        raise RowError("undecided verdict (preference is 1.5)")
    texts = {key: as_text(value, key) for key, value in (("output_1", out1), ("output_2", out2))}
    for key, text in texts.items():
        if not text.strip():
            raise RowError(f"empty output in field '{key}'")
    p2 = pref - 1.0
    second = p2 > 0.5
    chosen, rejected = (texts["output_2"], texts["output_1"]) if second else (texts["output_1"], texts["output_2"])
    models = (as_text(gen2, "generator_2"), as_text(gen1, "generator_1"))
    prompt = as_text(instruction, "instruction")
    source = as_text(dataset, "dataset")
    annotator = record.get("annotator")
    return [
        {
            "id": content_id("alpaca-eval", str(annotator), models[0], models[1], prompt),
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "source": source,
            "chosen_score": max(p2, 1.0 - p2),
            "rejected_score": min(p2, 1.0 - p2),
            "domain": source,
            "chosen_model": models[0] if second else models[1],
            "rejected_model": models[1] if second else models[0],
            "preference": float(pref),
        }
    ]
