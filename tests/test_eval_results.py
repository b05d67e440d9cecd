"""Metrics JSON files: content, atomic writing, config hash, loader to a DataFrame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.eval.results import (
    config_hash,
    load_metrics,
    read_metrics,
    write_metrics,
)
from core.eval.rewardbench import score_rewardbench


def _write(path, **over):
    kw = dict(
        model_path="results/models/rm",
        dataset_path="results/data/test.parquet",
        counts={"n": 4, "per_subset": {"alpacaeval-easy": 4}},
        seed=1,
        config={"rho": 0.1, "div": "tv"},
    )
    kw.update(over)
    metrics = kw.pop(
        "metrics",
        {"accuracy": np.float64(0.75), "sections": {"Chat": 0.75, "Safety": float("nan")}},
    )
    return write_metrics(path, metrics, **kw)


def test_write_read_roundtrip_and_determinism(tmp_path):
    p = _write(tmp_path / "metrics" / "rm" / "a.json")
    rec = read_metrics(p)
    assert rec["metrics"] == {"accuracy": 0.75, "sections": {"Chat": 0.75, "Safety": None}}
    assert rec["model_path"] == "results/models/rm" and rec["seed"] == 1 and rec["counts"]["n"] == 4
    assert rec["config_hash"] == config_hash({"div": "tv", "rho": 0.1}) and rec["name"] == "a"
    first = p.read_bytes()
    _write(p)
    assert p.read_bytes() == first  # no timestamps: same inputs, same bytes
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.json"]  # no temp files left behind


def test_config_hash_is_canonical():
    assert config_hash({"a": 1, "b": {"c": [1, 2]}}) == config_hash({"b": {"c": [1, 2]}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({})) == 16


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="must end in .json"):
        _write(tmp_path / "a.txt")
    with pytest.raises(ValueError, match=r"counts\.per_subset\.x must be a non-negative integer"):
        _write(tmp_path / "a.json", counts={"per_subset": {"x": -1}})
    with pytest.raises(ValueError, match="seed must be"):
        _write(tmp_path / "a.json", seed="1")
    with pytest.raises(ValueError, match="cannot store a object"):
        _write(tmp_path / "a.json", metrics={"x": object()})
    (tmp_path / "b.json").write_text(json.dumps({"schema": "robust-rlhf/metrics/v1", "metrics": {}}))
    with pytest.raises(ValueError, match=r"b\.json: missing key 'model_path'"):
        read_metrics(tmp_path / "b.json")


def test_loader_builds_a_frame(tmp_path):
    root = tmp_path / "results" / "metrics"
    rb = score_rewardbench(["alpacaeval-easy", "math-prm"], [1, 0])
    _write(root / "rm" / "seed1.json", metrics=rb.to_dict(), seed=1)
    _write(root / "rm" / "seed2.json", metrics={"overall": 0.5}, seed=2, extra={"run_id": "abc"})
    df = load_metrics(root)
    assert isinstance(df, pd.DataFrame) and len(df) == 2
    assert df["seed"].tolist() == [1, 2]
    assert df.loc[0, "sections.Chat"] == 1.0 and df.loc[0, "subsets.math-prm"] == 0.0
    assert pd.isna(df.loc[0, "sections.Safety"]) and df.loc[1, "extra.run_id"] == "abc"
    assert df.loc[0, "count.per_subset.alpacaeval-easy"] == 4
    assert len(load_metrics(str(root / "**" / "seed2.json"))) == 1
    with pytest.raises(ValueError, match="no such metrics file"):
        load_metrics(tmp_path / "nothing.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no metrics files"):
        load_metrics(tmp_path / "empty")
