"""The ``alpaca-eval`` format: AlpacaEval's ``results/<generator>/<annotator>/annotations.json[.gz]``
layout, written here as small fixtures, and the real files of ``data/alpaca_eval`` where present."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from core.data import LoadError, load_preferences

REF = "text_davinci_003"


def _record(i: int, gen: str, pref, annotator: str = "alpaca_eval_gpt4", out1: str | None = None, out2=None):
    return {
        "instruction": f"Instruction {i}: explain topic {i}.",
        "dataset": ["helpful_base", "koala", "oasst"][i % 3],
        "output_1": f"Reference answer {i}." if out1 is None else out1,
        "generator_1": REF,
        "output_2": f"A longer answer from {gen} to question {i}, with detail." if out2 is None else out2,
        "generator_2": gen,
        "annotator": annotator,
        "preference": pref,
    }


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(records).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """Two generators under two annotators, with every kind of bad verdict among the records."""
    root = tmp_path / "results"
    _write(
        root / "gen-a" / "alpaca_eval_gpt4" / "annotations.json.gz",
        [
            _record(0, "gen-a", 2),
            _record(1, "gen-a", 1),
            _record(2, "gen-a", None),  # no verdict
            _record(3, "gen-a", 0),  # no verdict
            _record(4, "gen-a", "2"),  # a numeric string, as some files hold
            _record(5, "gen-a", 2, out2="   "),  # empty output
        ],
    )
    _write(
        root / "gen-b" / "alpaca_eval_gpt4" / "annotations.json",
        [_record(0, "gen-b", 1), _record(1, "gen-b", 2.0), _record(2, "gen-b", 3)],  # 3: out of range
    )
    turbo = "weighted_alpaca_eval_gpt4_turbo"
    _write(
        root / "gen-a" / turbo / "annotations.json.gz",
        [
            _record(0, "gen-a", 1.8, turbo),
            _record(1, "gen-a", 1.25, turbo),
            _record(2, "gen-a", 1.5, turbo),  # undecided
        ],
    )
    return root


def _load(source, **options):
    return load_preferences(
        source, "alpaca-eval", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True, **options
    )


def test_folder_pairs_orientation_and_kept_fields(results: Path):
    ds, rep = _load(results)
    assert (rep.n_records, rep.n_pairs, rep.n_dropped) == (12, 7, 5)
    decided = [r for r in ds if r["preference"] in (1.0, 2.0)]  # the integer annotator's verdicts
    rows = {(r["chosen_model"], r["rejected_model"], r["prompt"][:13]): r for r in decided}
    assert len(rows) == len(decided) == 5
    # preference 2: output_2 (the evaluated generator) is chosen; 1: the reference is
    won = rows[("gen-a", REF, "Instruction 0")]
    assert won["chosen"].startswith("A longer answer from gen-a") and won["rejected"] == "Reference answer 0."
    assert (won["preference"], won["chosen_score"], won["rejected_score"]) == (2.0, 1.0, 0.0)
    assert won["source"] == won["domain"] == "helpful_base"
    lost = rows[(REF, "gen-a", "Instruction 1")]
    assert lost["chosen"] == "Reference answer 1." and lost["preference"] == 1.0 and lost["source"] == "koala"
    assert rows[("gen-a", REF, "Instruction 4")]["preference"] == 2.0  # "2" read as a number
    # the weighted annotator: p(output_2) = preference - 1 decides and scores the two sides
    weighted = [r for r in ds if r["preference"] not in (1.0, 2.0)]
    assert sorted((r["chosen_model"], r["preference"]) for r in weighted) == [("gen-a", 1.8), (REF, 1.25)]
    for r in weighted:
        assert r["chosen_score"] == pytest.approx(max(r["preference"] - 1, 2 - r["preference"]))
        assert r["chosen_score"] + r["rejected_score"] == pytest.approx(1.0)
    assert len(set(ds["id"])) == len(ds)


def test_bad_verdicts_are_dropped_with_their_reason(results: Path):
    _, rep = _load(results)
    assert Counter(b.reason for b in rep.bad_rows) == {
        "no verdict (preference is null)": 1,
        "no verdict (preference is 0)": 1,
        "empty output in field 'output_2'": 1,
        "field 'preference' must be in [1, 2], got 3": 1,
        "undecided verdict (preference is 1.5)": 1,
    }
    located = {b.reason: b.location for b in rep.bad_rows}
    assert "gen-a/alpaca_eval_gpt4/annotations.json.gz, record 3" in located["no verdict (preference is null)"]
    with pytest.raises(LoadError, match="no verdict"):
        load_preferences(results, "alpaca-eval")  # on_bad_rows='error' names them


def test_a_generator_is_kept_by_its_folder_name_too(tmp_path: Path):
    """Some folders' records name their generator otherwise (the shared alpaca-7b-neft's do)."""
    _write(tmp_path / "results" / "neat-7b" / "alpaca_eval_gpt4" / "annotations.json", [_record(0, "run-42", 2)])
    ds, rep = _load(tmp_path / "results", generators=["neat-7b"])
    assert rep.n_records == 1 and ds["chosen_model"] == ["run-42"]
    assert _load(tmp_path / "results", generators=["run-42"])[1].n_records == 1


def test_options_keep_generators_and_one_annotator(results: Path):
    ds, rep = _load(results, generators=["gen-b"])
    assert set(ds["chosen_model"]) | set(ds["rejected_model"]) == {"gen-b", REF}
    assert (rep.n_records, rep.n_pairs) == (3, 2)  # records the options leave out are not read
    ds, rep = _load(results, annotator="weighted_alpaca_eval_gpt4_turbo")
    assert (rep.n_records, rep.n_pairs) == (3, 2)
    ds, rep = _load(results, annotator="alpaca_eval_gpt4", generators="gen-a")
    assert rep.n_records == 6 and set(ds["preference"]) == {1.0, 2.0}
    with pytest.raises(ValueError, match="option 'generators'"):
        _load(results, generators=[])
    with pytest.raises(ValueError, match="takes no option"):
        _load(results, judge="x")


def test_one_annotations_file(results: Path):
    ds, rep = _load(results / "gen-b" / "alpaca_eval_gpt4" / "annotations.json")
    assert (rep.n_records, rep.n_pairs, rep.n_dropped) == (3, 2, 1)
    ds, rep = _load(results / "gen-a" / "weighted_alpaca_eval_gpt4_turbo" / "annotations.json.gz")
    assert (rep.n_records, rep.n_pairs, rep.n_dropped) == (3, 2, 1)


SHARED = Path(os.environ.get("ROBUST_RLHF_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.skipif(not (SHARED / "alpaca_eval").is_dir(), reason=f"no AlpacaEval results under {SHARED}")
def test_the_real_files_counts_per_reason_and_source():
    results = SHARED / "alpaca_eval" / "results"
    ds, rep = load_preferences(results, "alpaca-eval", on_bad_rows="drop", return_report=True)
    assert (rep.n_records, rep.n_pairs, rep.n_dropped) == (45076, 44751, 325)
    assert Counter(b.reason for b in rep.bad_rows) == {
        "no verdict (preference is 0)": 167,
        "undecided verdict (preference is 1.5)": 75,
        "no verdict (preference is null)": 49,
        "empty output in field 'output_2'": 32,
        "empty output in field 'output_1'": 2,
    }
    _, neft = load_preferences(results, "alpaca-eval", on_bad_rows="drop", return_report=True,
                               annotator="alpaca_eval_gpt4", generators=["alpaca-7b-neft"])  # fmt: skip
    assert neft.n_records == 805  # its records name the generator otherwise: kept by its folder
    assert Counter(ds["source"]) == {
        "selfinstruct": 13929,
        "oasst": 10477,
        "koala": 8667,
        "helpful_base": 7203,
        "vicuna": 4475,
    }
