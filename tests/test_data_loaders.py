"""Every preference format through ``load_preferences``, on fixtures in each dataset's real schema."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from core.data import (
    NORMALISED_COLUMNS,
    BadRow,
    LoadError,
    load_preferences,
    preference_features,
    read_pairs,
    rows_to_dataset,
    write_dropped_rows,
    write_pairs,
)
from core.data import loaders as loaders_module
from core.data.formats import hh_rlhf

FIX = Path(__file__).parent / "fixtures" / "data"
# The fixtures hide a bad row or two among a handful, far over the default 5% drop limit: the
# tests of what a drop keeps pass max_drop_fraction=1.0; the limit has its own tests below.


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _msgs(*pairs: tuple[str, str]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in pairs]


def _by_id(ds: datasets.Dataset) -> dict[str, dict]:
    return {row["id"]: row for row in ds}


# --- Unified-Feedback --------------------------------------------------------------------------


def test_unified_feedback_pairs_ties_and_bad_rows():
    ds, rep = load_preferences(
        FIX / "unified_feedback.jsonl",
        "unified-feedback",
        on_bad_rows="drop",
        max_drop_fraction=1.0,
        return_report=True,
    )
    assert (rep.n_records, rep.n_pairs, rep.n_ties, rep.n_dropped) == (7, 4, 1, 2)
    assert list(ds.column_names) == list(NORMALISED_COLUMNS)
    rows = _by_id(ds)
    assert set(rows) == {
        "ultra_feedback_clean-0",
        "chatbot_arena_conversations-3",
        "hh-rlhf-11",
        "ultra_feedback_clean-9",
    }
    single = rows["ultra_feedback_clean-0"]
    assert single["prompt"] == _msgs(("user", "Name a primary colour."))
    assert single["chosen"] == _msgs(("assistant", "Red is a primary colour."))
    assert (single["chosen_score"], single["rejected_score"]) == (8.5, 3.0)
    # B rated higher; the arena conversations differ from the first assistant turn on.
    arena = rows["chatbot_arena_conversations-3"]
    assert arena["prompt"] == _msgs(("user", "What is 2+2?"))
    assert arena["chosen"] == _msgs(("assistant", "4."), ("user", "Are you sure?"), ("assistant", "Yes, 2+2 is 4."))
    assert arena["rejected"][0]["content"] == "5."
    assert arena["source"] == "chatbot_arena_conversations"
    # Shared earlier turns stay in the prompt.
    hh = rows["hh-rlhf-11"]
    assert [m["role"] for m in hh["prompt"]] == ["user", "assistant", "user"]
    assert hh["rejected"] == _msgs(("assistant", "No."))
    assert "日本標準時" in rows["ultra_feedback_clean-9"]["chosen"][0]["content"]
    assert "Tōkyō" in rows["ultra_feedback_clean-9"]["prompt"][0]["content"]
    reasons = {b.location.rsplit(" ", 1)[-1]: b.reason for b in rep.bad_rows}
    assert reasons == {
        "6": "empty completion in field 'chosen'",
        "7": "missing field 'conv_B_rating'",
    }
    assert all("unified_feedback.jsonl, line" in b.location for b in rep.bad_rows)


def test_bad_rows_raise_with_file_and_line_by_default():
    with pytest.raises(ValueError) as err:
        load_preferences(FIX / "unified_feedback.jsonl", "unified-feedback")
    msg = str(err.value)
    assert "2 bad row(s)" in msg
    assert "unified_feedback.jsonl, line 6: empty completion in field 'chosen'" in msg
    assert "unified_feedback.jsonl, line 7: missing field 'conv_B_rating'" in msg


def test_same_records_from_parquet_gz_and_json_array(tmp_path):
    records = _rows(FIX / "unified_feedback.jsonl")[:5]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "uf.parquet")
    (tmp_path / "uf.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    (tmp_path / "uf.json").write_text(json.dumps(records), encoding="utf-8")
    loaded = [
        load_preferences(tmp_path / name, "unified-feedback") for name in ("uf.parquet", "uf.jsonl.gz", "uf.json")
    ]
    assert len(loaded[0]) == 4
    for ds in loaded[1:]:
        assert ds.to_list() == loaded[0].to_list()


# --- RewardBench --------------------------------------------------------------------------------


def test_reward_bench_parquet_sections_and_equal_pair(tmp_path):
    pq.write_table(
        pa.Table.from_pylist(_rows(FIX / "reward_bench.jsonl")),
        tmp_path / "filtered-00000-of-00001.parquet",
    )
    ds, rep = load_preferences(
        tmp_path, "reward-bench", split="filtered", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True
    )
    assert rep.n_pairs == 5 and rep.n_dropped == 1
    assert rep.bad_rows[0].reason == "chosen == rejected"
    assert rep.bad_rows[0].location.endswith("filtered-00000-of-00001.parquet, record 6")
    domains = {row["source"]: row["domain"] for row in ds}
    assert domains == {
        "alpacaeval-easy": "chat",
        "llmbar-natural": "chat-hard",
        "xstest-should-respond": "safety",
        "hep-python": "reasoning",
        "math-prm": "reasoning",
    }
    rows = _by_id(ds)
    assert rows["4500"]["chosen"] == "def add(a, b):\n    return a + b\n"
    assert rows["3100"]["prompt"] == "Simplify √(16) + ½."
    assert rows["30"]["chosen_score"] is None


# --- HHH ----------------------------------------------------------------------------------------


def test_hhh_from_bigbench_task_folder_every_good_bad_pair():
    ds, rep = load_preferences(FIX / "hhh_alignment", "hhh", return_report=True)
    assert (rep.n_records, rep.n_pairs, rep.n_ties) == (4, 4, 1)
    assert Counter(ds["source"]) == {"hhh_alignment:harmless": 3, "hhh_alignment:honest": 1}
    assert set(ds["domain"]) == {"harmless", "honest"}
    insult = [r for r in ds if "Write an insult" in r["prompt"]]
    # the task's example_input_prefix / example_output_prefix are kept
    assert {r["prompt"] for r in insult} == {"\nHuman: Write an insult about my coworker.\nAssistant:"}
    assert {r["rejected"] for r in insult} == {"Sure: they are an idiot.", "They smell."}
    assert all(r["chosen"].startswith("I'd rather not") for r in insult)
    assert all((r["chosen_score"], r["rejected_score"]) == (1.0, 0.0) for r in ds)
    # One subtask file alone still knows its task and subset.
    one = load_preferences(FIX / "hhh_alignment" / "honest" / "task.json", "hhh")
    assert one["source"] == ["hhh_alignment:honest"] and "Misérables" in one[0]["prompt"]


def _hhh_hub_mock(root: Path) -> Path:
    """A local copy laid out like HuggingFaceH4/hhh_alignment: one folder per config (harmless,
    helpful, honest, other) holding its ``test`` split, rows ``input, targets{choices, labels}``."""
    rows = _rows(FIX / "hhh_hub" / "helpful" / "test.jsonl")
    for k, config in enumerate(("harmless", "helpful", "honest", "other")):
        (root / config).mkdir(parents=True)
        text = "".join(json.dumps({**r, "input": f"{config}: {r['input']}"}) + "\n" for r in rows[: k % 2 + 1])
        (root / config / "test.jsonl").write_text(text, encoding="utf-8")
    return root


def test_hhh_one_source_loads_every_hub_config(tmp_path, monkeypatch):
    mock, calls = _hhh_hub_mock(tmp_path / "hhh_alignment"), []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return _rows(mock / name / f"{split}.jsonl")

    monkeypatch.setattr(loaders_module.datasets, "load_dataset", fake_load_dataset)
    paper = yaml.safe_load((Path(__file__).parents[1] / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    spec = paper["data"]["sources"]["hhh"]  # the paper config's one HHH source
    configs = spec["hub_name"]
    assert (spec["source"], spec["format"], configs) == (
        "HuggingFaceH4/hhh_alignment",
        "hhh",
        ["harmless", "helpful", "honest", "other"],
    )
    ds, rep = load_preferences("HuggingFaceH4/hhh_alignment", "hhh", hub_name=configs, return_report=True)
    assert calls == [("HuggingFaceH4/hhh_alignment", c, "test") for c in configs]
    # row 1 of each config: 1 pair; row 2 (helpful, other): 2 pairs
    assert Counter(ds["domain"]) == {"harmless": 1, "helpful": 3, "honest": 1, "other": 3}
    assert all(r["prompt"].startswith(r["domain"] + ": ") for r in ds) and len(set(ds["id"])) == len(ds)
    assert rep.n_records == 6 and rep.n_pairs == 8
    with pytest.raises(ValueError, match="list of distinct config names"):
        load_preferences("HuggingFaceH4/hhh_alignment", "hhh", hub_name=["harmless", "harmless"])


def test_hhh_row_without_a_subset_is_a_row_error(tmp_path):
    path = tmp_path / "hhh.jsonl"
    shutil.copy(FIX / "hhh_hub" / "helpful" / "test.jsonl", path)
    assert len(load_preferences(path, "hhh", subset="helpful")) == 3
    with pytest.raises(LoadError, match="cannot tell the HHH subset") as err:
        load_preferences(path, "hhh", on_bad_rows="drop", max_drop_fraction=1.0)
    assert err.value.report.n_dropped == 2  # counted as bad rows, not a crash


def test_hhh_hub_copy_targets_choices_labels():
    ds = load_preferences(FIX / "hhh_hub", "hhh", split="test")
    assert len(ds) == 3
    assert set(ds["source"]) == {"hhh_alignment:helpful"} and set(ds["domain"]) == {"helpful"}
    dinner = [r for r in ds if r["prompt"].startswith("What's a quick dinner")]
    assert {r["rejected"] for r in dinner} == {"Food.", "Cook something."}


# --- MT-Bench human judgements ------------------------------------------------------------------


def test_mt_bench_per_turn_ties_excluded():
    ds, rep = load_preferences(FIX / "mt_bench_human.jsonl", "mt-bench-human", return_report=True)
    assert (rep.n_records, rep.n_pairs, rep.n_ties) == (5, 3, 2)
    turn1, turn2, extraction = ds[0], ds[1], ds[2]
    assert turn1["prompt"] == _msgs(("user", "Compose a short travel blog post about Hawaii."))
    assert turn1["chosen"] == _msgs(("assistant", "Aloha! Hawaii's beaches and volcanoes amazed me."))
    assert turn1["rejected"] == _msgs(("assistant", "Hawaii is a state."))
    # Turn 2: model_b won; the judged conversation covers both turns.
    assert len(turn2["chosen"]) == 3 and turn2["chosen"][-1]["content"] == "A state it is, and a lovely one."
    assert turn2["rejected"][-1]["content"] == "Hawaii was great."
    assert (turn1["domain"], extraction["domain"]) == ("writing", "extraction")
    assert extraction["chosen"] == _msgs(("assistant", "Zürich"))
    assert len(set(ds["id"])) == 3


def test_mt_bench_question_file_is_refused_by_name(tmp_path):
    path = tmp_path / "question.jsonl"
    path.write_text(
        '{"question_id": 81, "category": "writing", "turns": ["Write a travel blog post.", "Rewrite it."]}\n'
        '{"question_id": 82, "category": "writing", "turns": ["Draft an email.", "Shorter."]}\n',
        encoding="utf-8",
    )
    for fraction in (0.05, 1.0):
        with pytest.raises(LoadError, match=r"2 x an MT-Bench question \(question_id, category, turns\)"):
            load_preferences(path, "mt-bench-human", on_bad_rows="drop", max_drop_fraction=fraction)


def test_mt_bench_unknown_winner_is_a_bad_row(tmp_path):
    row = _rows(FIX / "mt_bench_human.jsonl")[0] | {"winner": "model_c"}
    (tmp_path / "human.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"human\.jsonl, line 1: field 'winner' must be"):
        load_preferences(tmp_path / "human.jsonl", "mt-bench-human")


# --- TL;DR --------------------------------------------------------------------------------------


def test_tldr_comparisons_prompt_choice_and_split_field():
    path = FIX / "tldr_comparisons_batch5.json"  # JSON lines named .json, as OpenAI ships them
    ds, rep = load_preferences(path, "tldr", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True)
    assert (rep.n_records, rep.n_pairs, rep.n_dropped) == (4, 3, 1)
    assert rep.bad_rows[0].location.endswith("tldr_comparisons_batch5.json, line 3")
    assert ds[0]["prompt"] == (
        "SUBREDDIT: r/cats\n\nTITLE: Cat problem\n\nPOST: My cat knocks cups off the table every "
        "morning and I am tired of it.\n\nTL;DR:"
    )
    assert ds[0]["chosen"] == " Cat knocks cups over daily; how to stop it?"
    assert ds[1]["chosen"].startswith(" Moved to Zürich")  # choice = 1
    assert ds[2]["prompt"].startswith("ARTICLE: The city council")
    train = load_preferences(path, "tldr", split="train")
    assert len(train) == 2
    with pytest.raises(ValueError, match="no record has split == 'test'"):
        load_preferences(path, "tldr", split="test")


# --- Anthropic HH -------------------------------------------------------------------------------


def _hh_folder(tmp_path: Path) -> Path:
    records = _rows(FIX / "hh_rlhf.jsonl")
    root = tmp_path / "hh-rlhf"
    for sub, rows in (("harmless-base", records), ("helpful-base", records[:2])):
        (root / sub).mkdir(parents=True)
        for split in ("train", "test"):
            payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
            (root / sub / f"{split}.jsonl.gz").write_bytes(gzip.compress(payload))
    return root


def test_hh_rlhf_split_at_last_assistant_turn(tmp_path):
    root = _hh_folder(tmp_path)
    ds, rep = load_preferences(
        root, "hh-rlhf", split="train", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True
    )
    assert (rep.n_records, rep.n_pairs, rep.n_dropped) == (7, 3 + 2, 2)
    reasons = sorted(b.reason for b in rep.bad_rows)
    assert reasons == [
        "chosen and rejected transcripts differ before the last Assistant turn",
        "empty completion in field 'chosen'",
    ]
    assert all("harmless-base/train.jsonl.gz, line" in b.location for b in rep.bad_rows)
    originals = {r["chosen"] for r in _rows(FIX / "hh_rlhf.jsonl")}
    for row in ds:
        assert row["prompt"] + row["chosen"] in originals
        assert row["prompt"].endswith("\n\nAssistant:")
    assert Counter(ds["source"]) == {"hh-rlhf/harmless-base": 3, "hh-rlhf/helpful-base": 2}
    multi = [r for r in ds if "rice" in r["prompt"]][0]
    assert multi["prompt"].count("\n\nHuman:") == 2 and multi["rejected"] == " Just microwave it."
    assert "ありがとう" in [r for r in ds if "Danke" in r["prompt"]][0]["chosen"]


def test_hh_rlhf_reply_containing_the_assistant_marker_is_kept(tmp_path):
    prompt = "\n\nHuman: Tell me a story.\n\nAssistant:"
    chosen = " Once upon a time.\n\nAssistant: The end."  # the reply itself contains the marker
    later = prompt + " A.\n\nHuman: "
    records = [
        {"chosen": prompt + chosen, "rejected": prompt + " No."},
        {"chosen": later + "More?\n\nAssistant: B.", "rejected": later + "No.\n\nAssistant: C."},
        {"chosen": "\n\nHuman: Hi.\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hey.\n\nAssistant: Hello!"},
    ]
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    ds, rep = load_preferences(path, "hh-rlhf", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True)
    assert len(ds) == 1 and ds[0]["prompt"] == prompt and ds[0]["chosen"] == chosen and ds[0]["rejected"] == " No."
    # a Human turn after the shared Assistant turn, or no shared Assistant turn: they differ earlier
    assert [b.reason for b in rep.bad_rows] == [hh_rlhf.DIFFER] * 2
    msgs = load_preferences(path, "hh-rlhf", as_messages=True, on_bad_rows="drop", max_drop_fraction=1.0)
    assert msgs[0]["chosen"] == [{"role": "assistant", "content": chosen.strip()}]


def test_hh_rlhf_as_messages(tmp_path):
    path = _hh_folder(tmp_path) / "helpful-base" / "test.jsonl.gz"
    ds = load_preferences(path, "hh-rlhf", split="test", as_messages=True)  # file named after split
    rice = ds[1]
    assert rice["prompt"] == _msgs(
        ("user", "Can you help me cook rice?"),
        ("assistant", "Sure, what kind of rice?"),
        ("user", "White rice."),
    )
    assert rice["chosen"][0]["role"] == "assistant" and rice["chosen"][0]["content"].startswith("Use two cups")


# --- BIG-bench ----------------------------------------------------------------------------------


def test_bigbench_tasks_subtasks_domains_and_pairs():
    ds, rep = load_preferences(FIX / "bigbench", "bigbench", return_report=True)
    # arithmetic: 2 + (2 best x 2 lower) pairs, one all-zero tie, one generative example skipped
    assert (rep.n_records, rep.n_ties, rep.n_skipped) == (7, 1, 1)
    assert Counter(ds["source"]) == {
        "simple_arithmetic_mc": 6,
        "polite_replies:formal": 2,
        "polite_replies:casual": 1,
    }
    domains = {row["source"]: row["domain"] for row in ds}
    assert domains["simple_arithmetic_mc"] == "reasoning"
    assert domains["polite_replies:formal"] == "safety"  # keyword from the parent task.json
    arith = [r for r in ds if r["source"] == "simple_arithmetic_mc"]
    assert arith[0]["prompt"] == "Add the numbers.\n2 + 3 ="
    one_plus_one = {(r["chosen"], r["rejected"]) for r in arith if "1 + 1" in r["prompt"]}
    assert one_plus_one == {("2", "3"), ("2", "11"), ("two", "3"), ("two", "11")}
    assert len(set(ds["id"])) == len(ds)
    only = load_preferences(FIX / "bigbench", "bigbench", tasks=["polite_replies"])
    assert set(only["source"]) == {"polite_replies:formal", "polite_replies:casual"}
    with pytest.raises(ValueError, match="no task named \\['nope'\\]"):
        load_preferences(FIX / "bigbench", "bigbench", tasks=["nope"])


# --- normalised round trip, undecodable bytes, options, hub branch ------------------------------


def test_write_and_read_pairs_round_trip_keeps_every_column(tmp_path):
    text = load_preferences(FIX / "tldr_comparisons_batch5.json", "tldr", on_bad_rows="drop", max_drop_fraction=1.0)
    msgs = load_preferences(FIX / "mt_bench_human.jsonl", "mt-bench-human")
    extra = text.add_column("target_chosen", [float(i) for i in range(len(text))])
    for name, ds in (("text", text), ("msgs", msgs), ("extra", extra)):
        path = write_pairs(ds, tmp_path / "out" / f"{name}.parquet")
        back = read_pairs(path)
        assert back.to_list() == ds.to_list()
        assert back.features == ds.features
        # the normalised loader reads the same file (validated, normalised columns only)
        assert load_preferences(path, "normalised").to_list() == ds.select_columns(list(NORMALISED_COLUMNS)).to_list()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "extra.parquet",
        "msgs.parquet",
        "text.parquet",
    ]
    with pytest.raises(ValueError, match=r"dataset file .*nope\.parquet does not exist"):
        read_pairs(tmp_path / "nope.parquet")


def test_write_pairs_replaces_atomically_and_leaves_no_temp_on_error(tmp_path):
    ds = load_preferences(FIX / "mt_bench_human.jsonl", "mt-bench-human")
    target = write_pairs(ds, tmp_path / "d.parquet")
    before = target.read_bytes()

    class Broken:
        def to_parquet(self, path):
            Path(path).write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_pairs(Broken(), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.parquet"]
    write_pairs(ds.select([0]), target)
    assert len(read_pairs(target)) == 1


def test_undecodable_bytes_reported_with_row(tmp_path):
    good = {"id": "a", "prompt": "p", "chosen": "yes", "rejected": "no", "source": "s"}
    lines = [
        json.dumps(good).encode(),
        b'{"id": "b", "prompt": "p", "chosen": "caf\xe9 \xff", "rejected": "no", "source": "s"}',
    ]
    (tmp_path / "n.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ValueError, match=r"n\.jsonl, line 2: undecodable text in field 'chosen'"):
        load_preferences(tmp_path / "n.jsonl", "normalised")
    ds, rep = load_preferences(
        tmp_path / "n.jsonl", "normalised", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True
    )
    assert ds["id"] == ["a"] and rep.n_dropped == 1
    # In a JSON array the record number is reported; JSON's own \udcxx escapes count too.
    (tmp_path / "n.json").write_bytes(b"[" + lines[0] + b", " + lines[1].replace(b"\xff", b"\\udcff") + b"]")
    with pytest.raises(ValueError, match=r"n\.json, record 2: undecodable text"):
        load_preferences(tmp_path / "n.json", "normalised")


def test_normalised_rejects_invalid_json_mixed_kinds_and_fixes_duplicate_ids(tmp_path):
    base = {"prompt": "p", "chosen": "yes", "rejected": "no", "source": "s"}
    lines = [
        json.dumps(base | {"id": "x"}),
        "{not json",
        json.dumps(base | {"id": "x", "chosen": "sure"}),
        json.dumps(base | {"id": "y", "prompt": [{"role": "user", "content": "p"}]}),
        json.dumps(base | {"id": "z", "chosen_score": "high"}),
    ]
    (tmp_path / "n.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds, rep = load_preferences(
        tmp_path / "n.jsonl", "normalised", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True
    )
    assert ds["id"] == ["x", "x#2"]
    reasons = [b.reason for b in rep.bad_rows]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "field 'prompt' holds messages but earlier rows hold text"
    assert reasons[2] == "field 'chosen_score' must be a number or null, got 'high'"


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        load_preferences(FIX / "reward_bench.jsonl", "csv")
    with pytest.raises(ValueError, match="takes no option\\(s\\) \\['as_messages'\\]"):
        load_preferences(FIX / "reward_bench.jsonl", "reward-bench", as_messages=True)
    with pytest.raises(ValueError, match="on_bad_rows must be"):
        load_preferences(FIX / "reward_bench.jsonl", "reward-bench", on_bad_rows="skip")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_preferences("./does/not/exist.jsonl", "reward-bench")
    with pytest.raises(ValueError, match="BIG-bench task file"):
        load_preferences(FIX / "bigbench" / "simple_arithmetic_mc" / "task.json", "reward-bench")
    with pytest.raises(ValueError, match="have no splits"):
        load_preferences(FIX / "bigbench", "bigbench", split="train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no data files"):
        load_preferences(empty, "normalised")


def test_hub_ids_go_to_datasets_load_dataset(monkeypatch):
    calls = []
    tables = {
        "allenai/reward-bench": _rows(FIX / "reward_bench.jsonl")[:2],
        "HuggingFaceH4/hhh_alignment": _rows(FIX / "hhh_hub" / "helpful" / "test.jsonl"),
        "Anthropic/hh-rlhf": _rows(FIX / "hh_rlhf.jsonl")[:3],
    }

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split, kwargs))
        return tables[path]

    monkeypatch.setattr(loaders_module.datasets, "load_dataset", fake_load_dataset)
    ds = load_preferences("allenai/reward-bench", "reward-bench")
    assert len(ds) == 2 and calls[-1] == ("allenai/reward-bench", None, "filtered", {})
    hhh = load_preferences("HuggingFaceH4/hhh_alignment", "hhh", hub_name="helpful")
    assert set(hhh["source"]) == {"hhh_alignment:helpful"} and calls[-1][1:3] == ("helpful", "test")
    hh = load_preferences("Anthropic/hh-rlhf", "hh-rlhf", split="test", hub_kwargs={"data_dir": "harmless-base"})
    assert len(hh) == 3 and calls[-1] == (
        "Anthropic/hh-rlhf",
        None,
        "test",
        {"data_dir": "harmless-base"},
    )
    with pytest.raises(ValueError, match="reads local task.json files"):
        load_preferences("google/bigbench", "bigbench")
    with pytest.raises(ValueError, match="trust_remote_code is never used"):
        load_preferences("Anthropic/hh-rlhf", "hh-rlhf", hub_kwargs={"trust_remote_code": True})


def test_local_path_wins_over_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("allenai/rb").mkdir(parents=True)  # a relative folder that reads like a hub id
    shutil.copy(FIX / "reward_bench.jsonl", Path("allenai/rb/filtered.jsonl"))
    monkeypatch.setattr(loaders_module.datasets, "load_dataset", lambda *a, **k: pytest.fail("went to the hub"))
    assert len(load_preferences("allenai/rb", "reward-bench", on_bad_rows="drop", max_drop_fraction=1.0)) == 5


def test_rows_to_dataset_keeps_schema_for_empty_results():
    empty = rows_to_dataset([])
    assert len(empty) == 0 and list(empty.column_names) == list(NORMALISED_COLUMNS)
    assert empty.features == preference_features()


# --- no silent data loss: drop limit, nothing kept, the dropped rows, BOM ------------------------


def _normalised_file(path: Path, n_good: int, bad: list[str], bom: bool = False) -> Path:
    """``n_good`` valid normalised rows then the ``bad`` lines (raw text) as JSON lines."""
    good = [
        json.dumps({"id": f"g{i}", "prompt": "p", "chosen": f"yes {i}", "rejected": "no", "source": "s"})
        for i in range(n_good)
    ]
    text = "\n".join(good + bad) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


EMPTY_CHOSEN = json.dumps({"id": "e", "prompt": "p", "chosen": " ", "rejected": "no", "source": "s"})
SAME = json.dumps({"id": "s", "prompt": "p", "chosen": "x", "rejected": "x", "source": "s"})


def test_dropping_more_than_max_drop_fraction_names_the_file_and_the_common_reasons(tmp_path):
    # 4 bad of 20 records: 20% > the default 5%
    path = _normalised_file(tmp_path / "n.jsonl", 16, [EMPTY_CHOSEN, EMPTY_CHOSEN, "{oops", SAME])
    with pytest.raises(LoadError) as err:
        load_preferences(path, "normalised", on_bad_rows="drop")
    msg = str(err.value)
    assert (
        f"{path} (format 'normalised'): 4 of 20 records are bad rows (20.0%), more than max_drop_fraction 0.05" in msg
    )
    common = msg.split("most common reasons: ")[1]
    assert common.startswith("2 x empty completion in field 'chosen'; 1 x ")
    assert "1 x chosen == rejected" in common and "1 x invalid JSON" in common
    assert f"(first at {path}, line 17)" in msg
    assert err.value.report.n_dropped == 4 and len(err.value.report.common_reasons()) == 3
    # at the limit it loads: 4 of 20 is exactly 0.2
    ds, rep = load_preferences(path, "normalised", on_bad_rows="drop", max_drop_fraction=0.2, return_report=True)
    assert len(ds) == 16 and rep.n_dropped == 4
    # under the default limit: 1 bad of 40 records (2.5%)
    under = _normalised_file(tmp_path / "u.jsonl", 39, [SAME])
    assert len(load_preferences(under, "normalised", on_bad_rows="drop")) == 39


def test_a_load_that_keeps_no_pair_is_an_error(tmp_path):
    bad = _normalised_file(tmp_path / "bad.jsonl", 0, [EMPTY_CHOSEN, SAME])
    with pytest.raises(LoadError, match=r"no preference pair kept from 2 record\(s\) \(2 bad, 0 ties, 0 skipped\)"):
        load_preferences(bad, "normalised", on_bad_rows="drop", max_drop_fraction=1.0)
    (tmp_path / "ties.jsonl").write_text(
        _rows_text(FIX / "mt_bench_human.jsonl", keep=("tie", "tie (bothbad)")), encoding="utf-8"
    )
    with pytest.raises(LoadError, match=r"ties\.jsonl \(format 'mt-bench-human'\): no preference pair kept .* 2 ties"):
        load_preferences(tmp_path / "ties.jsonl", "mt-bench-human")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(LoadError, match=r"no preference pair kept from 0 record"):
        load_preferences(tmp_path / "empty.jsonl", "normalised", on_bad_rows="drop")
    with pytest.raises(ValueError, match=r"max_drop_fraction must be a number in \[0, 1\], got 1.5"):
        load_preferences(bad, "normalised", on_bad_rows="drop", max_drop_fraction=1.5)


def test_dropped_rows_report_has_file_line_and_reason(tmp_path):
    path = _normalised_file(tmp_path / "n.jsonl", 3, [EMPTY_CHOSEN, "[1, 2]"])
    _, rep = load_preferences(path, "normalised", on_bad_rows="drop", max_drop_fraction=1.0, return_report=True)
    out = write_dropped_rows(rep, tmp_path / "n.parquet.dropped.jsonl")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"file": str(path), "line": 4, "reason": "empty completion in field 'chosen'"},
        {"file": str(path), "line": 5, "reason": "expected a JSON object, got list"},
    ]
    # JSON arrays and parquet report the record number, BIG-bench the example index
    (tmp_path / "a.json").write_text(f"[{SAME}]", encoding="utf-8")
    with pytest.raises(LoadError) as err:
        load_preferences(tmp_path / "a.json", "normalised", on_bad_rows="drop", max_drop_fraction=1.0)
    assert [b.to_dict() for b in err.value.report.bad_rows] == [
        {"file": str(tmp_path / "a.json"), "record": 1, "reason": "chosen == rejected"}
    ]
    assert BadRow(f"{path}, examples[3]", "r").to_dict() == {"file": str(path), "example": 3, "reason": "r"}
    # nothing dropped: an empty report file
    clean = _normalised_file(tmp_path / "c.jsonl", 2, [])
    _, rep = load_preferences(clean, "normalised", return_report=True)
    assert write_dropped_rows(rep, tmp_path / "c.dropped.jsonl").read_text(encoding="utf-8") == ""


@pytest.mark.parametrize("name", ["n.jsonl", "n.json", "n.jsonl.gz"])
def test_a_byte_order_mark_costs_no_row(tmp_path, name):
    path = _normalised_file(tmp_path / "plain.jsonl", 3, [], bom=True)
    data = path.read_bytes()
    if name == "n.json":  # a JSON array with a BOM
        rows = [json.loads(line) for line in data.decode("utf-8-sig").splitlines()]
        data = b"\xef\xbb\xbf" + json.dumps(rows).encode("utf-8")
    elif name.endswith(".gz"):
        data = gzip.compress(data)
    (tmp_path / name).write_bytes(data)
    ds = load_preferences(tmp_path / name, "normalised")  # on_bad_rows='error': any spoilt row raises
    assert ds["id"] == ["g0", "g1", "g2"]


def _rows_text(path: Path, keep: tuple[str, ...]) -> str:
    return "".join(json.dumps(r) + "\n" for r in _rows(path) if r["winner"] in keep)


def test_shared_prompt_ends_on_a_user_turn():
    from core.data.formats._common import split_conversations
    from core.data.schema import RowError

    a = _msgs(("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "x"))
    b = _msgs(("user", "u1"), ("assistant", "a1"), ("user", "u2 changed"), ("assistant", "y"))
    prompt, chosen, rejected = split_conversations(a, b, "A", "B")
    assert prompt == a[:1] and chosen == a[1:] and rejected == b[1:]
    with pytest.raises(RowError, match="share no prompt"):
        split_conversations(a, _msgs(("user", "other"), ("assistant", "z")), "A", "B")
