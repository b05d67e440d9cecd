"""``python -m core.eval.score``: any saved reward model on any preference file, as JSON."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.data import load_preferences
from core.data.synthetic import generate_world
from core.data.synthetic_oracle import OracleConfig, oracle_reward
from core.eval.pairwise import reward_model_pairwise
from core.eval.score import main, pair_scores
from tests.conftest import make_tiny_llama, make_tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]


def _rows() -> list[dict]:
    """Six pairs over two sources; pairs 0-2 are length-matched (within 20%), 3-5 are not."""
    spec = [
        ("a", "the cat is good", "the dog is bad"),  # 15 vs 14 characters: matched, the longer chosen
        ("a", "yes please help", "no sorry cannot"),  # 15 vs 15: matched, a tie of lengths
        ("b", "the sun is red", "the moon is blue"),  # 14 vs 16: matched
        ("b", "one", "one two three four five"),  # the shorter one chosen
        ("b", "hello thanks sure here is my answer", "no"),  # the longer one chosen
        ("a", "cat", "three four five six"),
    ]
    return [
        {"id": f"p{i}", "prompt": f"question {i} what is it", "chosen": c, "rejected": r, "source": s}
        for i, (s, c, r) in enumerate(spec)
    ]


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return path


def _save_rm(folder: Path, seed: int) -> Path:
    tok = make_tiny_tokenizer()
    make_tiny_llama(tok, seed=seed, reward=True).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def _run(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "core.eval.score", *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def test_reward_model_folder_accuracy_sources_and_length_matched(tmp_path: Path, data_file: Path):
    from core.models import load_reward_model, load_tokenizer

    rm = _save_rm(tmp_path / "rm", seed=1)
    out = _run("--model", str(rm), "--data", str(data_file), "--format", "normalised", "--device", "cpu")
    ds = load_preferences(data_file, "normalised")
    res = reward_model_pairwise(load_reward_model(rm).eval(), load_tokenizer(rm), ds, batch_size=16, max_length=512)
    correct = res.correct
    assert out["accuracy"] == pytest.approx(correct.mean()) and out["n"] == 6
    assert out["ci95"][0] <= out["accuracy"] <= out["ci95"][1]
    assert out["by_source"]["a"]["accuracy"] == pytest.approx(correct[[0, 1, 5]].mean())
    assert out["by_source"]["b"]["n"] == 3
    matched = out["length_matched"]
    assert (matched["n"], matched["within"]) == (3, 0.2)
    assert matched["accuracy"] == pytest.approx(correct[:3].mean())
    # the length rule on the same pairs: right on pair 0, a tie (wrong) on pair 1, wrong on pair 2
    assert matched["longer"]["accuracy"] == pytest.approx(1 / 3)
    assert out["longer"]["accuracy"] == pytest.approx(2 / 6)  # pairs 0 and 4 have the longer one chosen
    assert out["load"]["n_pairs"] == 6 and out["format"] == "normalised"
    assert out["spread"]["degenerate"] is False


def test_an_ensemble_is_the_mean_of_its_members(tmp_path: Path, data_file: Path):
    a, b = _save_rm(tmp_path / "a", seed=1), _save_rm(tmp_path / "b", seed=2)
    ds = load_preferences(data_file, "normalised")
    ca, ra = pair_scores([str(a)], ds)
    cb, rb = pair_scores([str(b)], ds)
    c, r = pair_scores([str(a), str(b)], ds)
    np.testing.assert_allclose(c, (ca + cb) / 2, rtol=1e-6)
    np.testing.assert_allclose(r, (ra + rb) / 2, rtol=1e-6)


def test_the_synthetic_worlds_exact_oracle(tmp_path: Path):
    world = generate_world({"n_train": 60, "n_test": 20, "n_eval_per_subset": 4, "n_sft": 10, "n_prompts": 8}, seed=0)
    data = tmp_path / "test.parquet"
    world["test"].to_parquet(data)
    oracle = tmp_path / "oracle.json"
    cfg = OracleConfig()
    oracle.write_text(json.dumps({"oracle": dataclasses.asdict(cfg)}))
    out = _run("--model", str(oracle), "--data", str(data), "--format", "normalised")
    ds = world["test"]
    exact = np.mean(
        [
            oracle_reward(p, c, cfg) > oracle_reward(p, r, cfg)
            for p, c, r in zip(ds["prompt"], ds["chosen"], ds["rejected"], strict=True)
        ]
    )
    assert out["accuracy"] == pytest.approx(exact) and out["n"] == len(ds)


def test_bad_input_is_a_clear_error(tmp_path: Path, data_file: Path, capsys):
    assert main(["--model", str(tmp_path / "nothing"), "--data", str(data_file), "--format", "normalised"]) == 2
    assert "expected a reward-model folder" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--data", str(tmp_path / "none.jsonl"), "--format", "normalised"]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "x", "--data", str(data_file), "--format", "normalised", "--option", "novalue"])
