"""RewardBench 2: the loader on files laid out like ``allenai/reward-bench-2``, the official best-of-n
and Ties arithmetic on hand-made scores, and the evaluation of tiny models against the project's
pairwise scoring of the same pairs."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from eval_tiny import tiny_lm, tiny_rm, tiny_tokenizer

import core.data.loaders as loaders_module
from core.data import load_preferences
from core.data.schema import LoadError
from core.eval.benchmarks import evaluate_benchmark
from core.eval.pairwise import policy_pairwise, reward_model_pairwise
from core.eval.rewardbench2 import (
    Record,
    best_of_n_credit,
    group_records,
    record_pairs,
    score_rewardbench2,
    ties_scores,
)
from core.plan import Pipeline
from core.plan.config import ConfigError
from core.vocab import REWARDBENCH2_SUBSETS

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]

BENCH = {"data": "rewardbench2", "kind": "rewardbench2", "label": "RewardBench 2"}


def _record(rid, subset, prompt, chosen, rejected, **over):
    row = {
        "id": rid,
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "num_correct": len(chosen),
        "num_incorrect": len(rejected),
        "total_completions": len(chosen) + len(rejected),
        "models": ["m1"] * (len(chosen) + len(rejected)),
        "subset": subset,
        "additional_metadata": {"category": subset.lower(), "correct": None},
    }
    return {**row, **over}


#: the hub dataset's columns; Ties records with ref:/tied: ids and several correct answers
RECORDS = [
    _record("17", "Factuality", "Who wrote Hamlet?", ["Shakespeare."], ["Marlowe.", "Dickens.", "Austen."]),
    _record("42", "Math", "2+3?", ["5"], ["6", "4", "23"]),
    _record("ref:1", "Ties", "Name the primary colour of the sky.", ["Blue."], ["Green.", "Red."]),
    _record("tied:1", "Ties", "Name a primary colour.", ["Blue.", "Red."], ["Green.", "Purple."]),
]


def _parquet(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


# --- loader ---------------------------------------------------------------------------------------


def test_hub_layout_loads_every_chosen_rejected_pair(tmp_path):
    folder = tmp_path / "reward-bench-2"
    _parquet(folder / "data" / "test-00000-of-00001.parquet", RECORDS)
    ds, rep = load_preferences(folder, "reward-bench-2", split="test", return_report=True)
    assert (rep.n_records, rep.n_pairs) == (4, 3 + 3 + 2 + 4)
    assert Counter(ds["source"]) == {"Factuality": 3, "Math": 3, "Ties": 6}
    assert ds["id"][:3] == ["17/c0-r0", "17/c0-r1", "17/c0-r2"]
    assert ds[9]["id"] == "tied:1/c0-r1" and (ds[9]["chosen"], ds[9]["rejected"]) == ("Blue.", "Purple.")
    records, record_of = group_records(list(ds), list(ds["source"]))
    assert records == [
        Record(r["id"], r["subset"], r["prompt"], tuple(r["chosen"] + r["rejected"]), r["num_correct"]) for r in RECORDS
    ]
    assert record_of == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3]


def test_hub_id_loads_split_test(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return RECORDS

    monkeypatch.setattr(loaders_module.datasets, "load_dataset", fake_load_dataset)
    ds = load_preferences("allenai/reward-bench-2", "reward-bench-2")
    assert calls == [("allenai/reward-bench-2", None, "test")] and len(ds) == 12


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_record("1", "Math", "q", [], ["a"]), "field 'chosen' must hold at least one completion"),
        (_record("2", "Math", "q", ["a"], [3, "b"]), "field 'rejected[0]' must be a string, got int"),
        (_record("3", "Math", "q", "a", ["b"]), "field 'chosen' must be a list of strings, got str"),
        (_record("4", "Math", "q", ["a"], ["b"], num_correct=2), "field 'num_correct' is 2 but the record has 1"),
        (_record("5", "Math", "q", ["a"], ["b"], total_completions=3), "field 'total_completions' is 3"),
        (_record("6", "Ties", "q", ["a"], ["b"]), "field 'id' of a Ties record must be 'ref:<n>' or 'tied:<n>'"),
        (_record("tied:7", "Ties", "q", ["a"], ["b"]), "needs at least 2 correct completions"),
        (_record("8", "Math", "q", ["a"], [""]), "empty completion in field 'rejected'"),
        ({k: v for k, v in _record("9", "Math", "q", ["a"], ["b"]).items() if k != "num_incorrect"},
         "missing field 'num_incorrect'"),
    ],
)  # fmt: skip
def test_bad_records_are_row_errors_naming_the_key(tmp_path, bad, reason):
    path = tmp_path / "test.jsonl"  # JSON lines: parquet cannot hold a mistyped column
    path.write_text("".join(json.dumps(r) + "\n" for r in [*RECORDS, bad]), encoding="utf-8")
    with pytest.raises(LoadError, match=re.escape(reason)):
        load_preferences(path, "reward-bench-2")
    ds, rep = load_preferences(path, "reward-bench-2", on_bad_rows="drop", max_drop_fraction=0.5, return_report=True)
    assert rep.n_dropped == 1 and reason in rep.bad_rows[0].reason and len(ds) == 12


# --- scoring --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "credit"),
    [
        ([2.0, 1.0, 0.0, -1.0], 1.0),  # chosen strictly best
        ([2.0, 2.0, 0.0, 1.0], 0.5),  # chosen tied at the max with one rejected
        ([2.0, 2.0, 2.0, 2.0], 0.25),  # all four tied
        ([1.0, 2.0, 0.0, 0.0], 0.0),  # a rejected completion wins
        ([1.0, 1.0, 2.0, 0.0], 0.0),  # chosen ties a rejected one, but below the max
    ],
)
def test_best_of_four_credit_shares_ties_at_the_max(scores, credit):
    assert best_of_n_credit(scores) == credit


def test_ties_score_by_hand():
    samples = [
        ("ref:1", [3.0, 1.0, 2.0], 1),  # gap 3 - 2 = 1: accurate
        ("tied:1", [5.0, 4.0, 1.0, 3.5], 2),  # spread 1, gap 0.5: accurate
        ("ref:2", [2.0, 2.0, 0.0], 1),  # gap 0: not accurate
        ("tied:2", [6.0, 6.0, 6.0, 1.0], 3),  # spread 0, gap 5: accurate
        ("tied:3", [1.0, 2.0, 3.0], 2),  # gap -1: not accurate; no ref:3, so no margin terms
        ("ref:4", [5.0, 1.0], 1),  # gap 4: accurate
        ("tied:4", [3.0, 3.0, 0.0], 2),  # spread 0, gap 3: accurate
    ]
    got = ties_scores(samples)
    assert (got.n_ref, got.n_tied, got.n_paired) == (3, 4, 3)
    assert got.ref_accuracy == pytest.approx(2 / 3) and got.tied_accuracy == pytest.approx(3 / 4)
    # prompts 1, 2, 4: gap_tied > spread: 0.5 > 1 no, 5 > 0 yes, 3 > 0 yes
    assert got.correctness_preferred == pytest.approx(2 / 3)
    # min(gap_ref, gap_tied) > spread: min(1, .5) > 1 no, min(0, 5) > 0 no, min(4, 3) > 0 yes
    assert got.correctness_preferred_hard == pytest.approx(1 / 3)
    # tanh(min / spread - 1): tanh(-0.5); 0/0 -> 0; 3/0 -> tanh(inf) = 1
    margin = (math.tanh(-0.5) + 0.0 + 1.0) / 3
    assert got.correctness_margin_score == pytest.approx(margin)
    expected = 0.3 * 3 / 4 + 0.3 * 2 / 3 + 0.2 * 2 / 3 + 0.2 * 1 / 3 + 0.01 * margin
    assert got.score == pytest.approx(expected) and expected == pytest.approx(0.6267929, abs=1e-7)


def test_subsets_and_overall():
    records = [
        Record("1", "Factuality", "q", ("a", "b", "c", "d"), 1),
        Record("2", "Factuality", "q", ("a", "b", "c", "d"), 1),
        Record("3", "Math", "q", ("a", "b", "c", "d"), 1),
        Record("ref:1", "Ties", "q", ("a", "b"), 1),
        Record("tied:1", "Ties", "q", ("a", "b", "c"), 2),
    ]
    scores = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [1.0, 0.0], [3.0, 2.5, 1.0]]
    got = score_rewardbench2(records, scores)
    # ref gap 1; tied spread 0.5, gap 1.5: both accurate, 1.5 > 0.5 and min(1, 1.5) > 0.5
    ties = 0.3 * 1 + 0.3 * 1 + 0.2 * 1 + 0.2 * 1 + 0.01 * math.tanh(1 / 0.5 - 1)
    assert got.subsets["Factuality"] == 0.75 and got.subsets["Math"] == 0.0
    assert got.subsets["Ties"] == pytest.approx(ties) and got.ties.score == pytest.approx(ties)
    assert math.isnan(got.subsets["Safety"]) and got.counts == {
        "Factuality": 2, "Precise IF": 0, "Math": 1, "Safety": 0, "Focus": 0, "Ties": 2}  # fmt: skip
    assert got.overall == pytest.approx((0.75 + 0.0 + ties) / 3)  # the present subsets, Ties included
    chosen, rejected = record_pairs(records[3:], scores[3:])
    assert chosen.tolist() == [1.0, 3.0, 2.5] and rejected.tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=re.escape("subsets ['chat'] are not RewardBench 2 subsets")):
        score_rewardbench2([Record("1", "chat", "q", ("a", "b"), 1)], [[1, 0]])


# --- evaluation -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rb2(tmp_path_factory):
    path = _parquet(tmp_path_factory.mktemp("rb2") / "test.parquet", RECORDS)
    return load_preferences(path, "reward-bench-2")


def _per_record(ds, pair_chosen, pair_rejected):
    """Each record's completion scores read back from pairwise scores of its pairs."""
    records, record_of = group_records(list(ds), list(ds["source"]))
    out = [[math.nan] * len(r.completions) for r in records]
    for k, row in enumerate(ds):
        i, j = (int(x[1:]) for x in row["id"].rsplit("/", 1)[1].split("-"))
        rec = record_of[k]
        out[rec][i], out[rec][records[rec].num_correct + j] = pair_chosen[k], pair_rejected[k]
    return records, out


def test_reward_model_scores_every_completion_as_the_pairwise_path(rb2):
    tok, rm = tiny_tokenizer(), tiny_rm(1)
    metrics, n = evaluate_benchmark(rb2, BENCH, tok, rm, None, batch_size=3, max_length=64, ties="wrong", source="rb2")
    pairs = reward_model_pairwise(rm, tok, rb2, batch_size=3, max_length=64)
    records, scores = _per_record(rb2, pairs.score_chosen, pairs.score_rejected)
    expected = score_rewardbench2(records, scores).to_dict()
    assert n == 12 and metrics["accuracy"] == pytest.approx(pairs.accuracy)
    for name, value in expected["subsets"].items():
        assert metrics["scores"]["subsets"][name] == pytest.approx(value, abs=1e-6, nan_ok=True)
    assert metrics["scores"]["overall"] == pytest.approx(expected["overall"], abs=1e-6)
    assert set(metrics["spread"]) == {"score_std", "mean_abs_margin", "degenerate"}


def test_policy_implicit_reward_per_completion(rb2):
    tok, lm, ref = tiny_tokenizer(chat_template=True), tiny_lm(0), tiny_lm(7)
    metrics, _ = evaluate_benchmark(rb2, BENCH, tok, lm, ref, batch_size=4, max_length=64, ties="wrong", source="rb2")
    assert set(metrics) == {"likelihood", "implicit"}
    for mode in ("likelihood", "implicit"):
        pairs = policy_pairwise(lm, tok, rb2, mode=mode, ref_model=ref, max_length=64)
        records, scores = _per_record(rb2, pairs.score_chosen, pairs.score_rejected)
        expected = score_rewardbench2(records, scores).to_dict()
        got = metrics[mode]["scores"]
        assert got["overall"] == pytest.approx(expected["overall"], abs=1e-6)
        assert np.allclose(
            [got["subsets"][k] for k in ("Factuality", "Math", "Ties")],
            [expected["subsets"][k] for k in ("Factuality", "Math", "Ties")],
            atol=1e-6,
        )


def test_reference_rows_longer_random_and_oracle(rb2):
    """'longer' scores each completion by its length; 'random' is the mean over seeded uniform draws
    (best-of-n: 1/n expected); 'oracle' scores with the given scorer."""
    from core.eval.benchmarks import evaluate_reference

    longer, n = evaluate_reference(rb2, BENCH, "longer", "wrong")
    # Factuality: "Shakespeare." is the longest of its 4 completions; Math: "23" is longer than "5"
    assert n == 12 and longer["scores"]["subsets"]["Factuality"] == 1.0 and longer["scores"]["subsets"]["Math"] == 0.0
    assert longer["implicit"]["scores"] == longer["likelihood"]["scores"] == longer["scores"]  # every mode
    rand, _ = evaluate_reference(rb2, BENCH, "random", "wrong", random_draws=2000)
    assert rand["draws"] == 2000
    assert rand["scores"]["subsets"]["Factuality"] == pytest.approx(0.25, abs=0.03)
    assert rand["accuracy"] == pytest.approx(0.5, abs=0.03)
    assert 0.0 < rand["scores"]["subsets"]["Ties"] < 1.0 and math.isnan(rand["scores"]["subsets"]["Safety"])
    oracle, _ = evaluate_reference(
        rb2, BENCH, "oracle", "wrong", oracle=lambda p, c: [float(x in ("5", "Blue.")) for x in c]
    )
    assert oracle["scores"]["subsets"]["Math"] == 1.0 and oracle["scores"]["subsets"]["Factuality"] == 0.25


# --- config and workflow --------------------------------------------------------------------------


def _paper() -> dict:
    return yaml.safe_load((REPO / "configs" / "paper.yaml").read_text(encoding="utf-8"))


def test_paper_config_scores_rewardbench2_and_builds_its_table():
    p = Pipeline(_paper())
    assert p.bench_specs()["rewardbench2"]["kind"] == "rewardbench2"
    assert p.bench_inputs("unfiltered")["rewardbench2"] == p.paths.raw("rewardbench2")
    assert "rewardbench2" not in p.dr_benchmarks_ood() and "rewardbench2" in p.reference_inputs("unfiltered")
    spec = p.specs.tables()["table_rb2"]
    assert [c.label for c in spec.columns] == [*REWARDBENCH2_SUBSETS, "Avg."]
    assert spec.columns[-1].key == "metrics/scores/overall"
    rm = [r for r in spec.rows if r.group.startswith("reward models")]
    dpo = [r for r in spec.rows if r.group.startswith("DPO policies")]
    refs = [r for r in spec.rows if r.group == "unfiltered; reference"]
    assert [r.label for r in refs] == ["Reference: longer response preferred", "Reference: random (expected)"]
    assert refs[0].cells["Ties"].files == (p.paths.metrics(p.paths.reference("unfiltered", "longer"), "rewardbench2"),)
    assert set(p.reference_outputs("unfiltered").values()) >= set(refs[0].cells["Ties"].files)
    assert [r.label for r in rm][0] == "BTL RM" and len(rm) == 1 + len(
        p.cfg["dr"]["reward"]["grids"]["unfiltered"]["tv"]
    )
    assert dpo[0].label == "Std. DPO" and len(dpo) == 1 + len(p.cfg["dr"]["dpo"]["rho"])
    assert dpo[0].cells["Ties"].key == "metrics/implicit/scores/subsets/Ties"  # report.dpo_mode
    # the table reads exactly the rewardbench2 metrics files the DR reward-model and DPO evaluations write
    written = {f for v, d, r in p.rm_grid("unfiltered", "tv") for s in p.seeds()
               for f in p.bench_outputs(p.paths.rm(v, d, r, s)).values()}  # fmt: skip
    written |= {f for d, r in p.dpo_grid() for s in p.seeds()
                for f in p.bench_outputs(p.paths.dpo("unfiltered", d, r, s)).values()}  # fmt: skip
    files = p.specs.table_files("table_rb2")
    refs_files = {f for r in refs for c in r.cells.values() for f in c.files}
    assert files and set(files) <= written | refs_files and all(f.endswith("/rewardbench2.json") for f in files)
    assert p.paths.table("table_rb2") in p.specs.report_inputs()["tables"]
    assert {"table": "tables/table_rb2.md"} in p.specs.report_sections()[2]["items"]
    for name in ("table3", "table6", "table8"):  # the papers' tables keep their columns
        assert "RewardBench 2" not in {c.label for c in p.specs.tables()[name].columns}


def _smoke_with_rb2(cfg: dict) -> dict:
    cfg["eval"]["benchmarks"]["rewardbench2"] = {"data": "world_eval", "kind": "rewardbench2", "label": "RB2"}
    return cfg


@pytest.mark.parametrize(
    ("config", "mutate", "message"),
    [
        (_paper, lambda c: c["data"]["sources"]["rewardbench2"].__setitem__("format", "reward-bench"),
         "config key eval.benchmarks.rewardbench2.data: RewardBench 2 needs a dataset loaded with format "
         "'reward-bench-2', got format 'reward-bench'"),
        (_paper, lambda c: c["eval"]["benchmarks"]["hhh"].__setitem__("kind", "rewardbench2"),
         "config key eval.benchmarks.hhh.kind: kind 'rewardbench2' belongs to the benchmark named rewardbench2"),
        (_paper, lambda c: c["eval"]["benchmarks"]["rewardbench2"].__setitem__("kind", "pairs"),
         "config key eval.benchmarks.rewardbench2.kind"),
        (_paper, lambda c: c["eval"]["benchmarks"]["rewardbench2"].__setitem__("subset_map", {"x": "Chat"}),
         "config key eval.benchmarks.rewardbench2.subset_map: targets ['Chat'] are not RewardBench 2 subsets"),
        (lambda: yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text()), _smoke_with_rb2,
         "config key eval.benchmarks.rewardbench2.data: RewardBench 2 needs a dataset loaded with format "
         "'reward-bench-2', got no data.sources entry of a real config"),
        (_paper, lambda c: c["eval"]["benchmarks"]["rewardbench2"].__setitem__("kind", "rb2"),
         "config key eval.benchmarks.rewardbench2.kind"),
    ],
)  # fmt: skip
def test_bad_rewardbench2_configs_are_refused_naming_the_key(config, mutate, message):
    cfg = config()
    mutate(cfg)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Pipeline(cfg)
