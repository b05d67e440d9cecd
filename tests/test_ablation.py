"""The label-noise ablation (core.report.ablation, rule label_noise_ablation): its rows from hand-made
metrics files (degenerate seeds, paired DR - BTL difference and its Student-t interval), the
noise-free config it trains, its place in the DAG (synthetic worlds with report.ablation only) and in
the report's claims section."""

from __future__ import annotations

import math

import pytest
import yaml
from test_workflow import REPO, smoke_config, snakemake

from core.eval.results import write_metrics
from core.plan import Pipeline
from core.plan.config import validate_config
from core.report.ablation import ablation_markdown, ablation_rows, noise_free

SEEDS = [0, 1, 2]


def pipeline(cfg: dict) -> Pipeline:
    validate_config(cfg)
    return Pipeline(cfg)


def smoke(**report) -> dict:
    cfg = smoke_config()
    cfg["seeds"] = SEEDS
    cfg["report"].update(report)
    return cfg


def write_grid(tmp_path, p: Pipeline, values: dict, degenerate: dict) -> None:
    """Every benchmark's metrics file of the TV grid (rho 0 = BTL, 0.5) per seed: accuracy ``values[rho][s]``."""
    variant = p.cfg["report"]["rm_variant"]
    for bench in p.dr_benchmarks():
        for _, div, rho in p.rm_grid(variant, "tv"):
            for s in SEEDS:
                acc = values[rho][s]
                metrics = {
                    "accuracy": acc,
                    "scores": {"overall": acc},
                    "spread": {"degenerate": s in degenerate.get(rho, ())},
                }
                path = tmp_path / p.paths.metrics(p.paths.rm(variant, div, rho, s), bench)
                write_metrics(path, metrics, model_path="m", dataset_path="d", counts={"pairs": 10}, seed=s)


def test_rows_hold_degenerate_seeds_and_the_paired_difference_with_its_interval(tmp_path):
    p = pipeline(smoke())
    write_grid(tmp_path, p, {0.0: [0.60, 0.70, 0.80], 0.5: [0.50, 0.50, 0.74]}, {0.5: (0, 1)})
    rows = ablation_rows(tmp_path, p)
    assert [r["benchmark"] for r in rows] == p.dr_benchmarks() and all(r["rho"] == 0.5 for r in rows)
    r = rows[0]
    diffs = [-10.0, -20.0, -6.0]  # DR - BTL in accuracy points, per seed
    mean, sd = sum(diffs) / 3, math.sqrt(sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2)
    assert r["diff"] == pytest.approx(mean) and r["btl"] == pytest.approx(70.0) and r["dr"] == pytest.approx(58.0)
    assert r["ci_high"] - r["diff"] == pytest.approx(4.302652729911275 * sd / math.sqrt(3))  # t_{0.975, 2}
    assert r["degenerate_seeds"] == [0, 1] and r["n_seeds"] == 3 and r["label_temperature"] == 0.5
    text = ablation_markdown(rows + [{**r, "label_temperature": 0.0, "degenerate_seeds": []}])
    assert "label temperature 0.5: 2 of 3; label temperature 0: 0 of 3" in text
    assert "Without label noise the collapse shrinks" in text
    same = ablation_markdown(rows + [{**r, "label_temperature": 0.0, "degenerate_seeds": [0, 1, 2]}])
    assert "does not shrink: label noise does not explain it" in same
    assert f"label temperature 0.5: {r['diff']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" in text
    assert "| 0.5 | id | 0.5 | 70.0 | 58.0 | -12.00 [" in text and "| 0,1 |" in text


def test_the_noise_free_config_changes_only_the_labels_and_the_grid():
    cfg = smoke(ablation=True)
    out = noise_free(cfg)
    assert out["name"] == "smoke-label-t0" and out["data"]["world"]["label_temperature"] == 0.0
    assert out["dr"]["reward"]["grids"] == {"no-hh-rlhf": {"tv": [0.5]}}  # the chi-square grid left out
    assert out["report"]["ablation"] is False and out["seeds"] == cfg["seeds"]
    assert {k: v for k, v in out["dr"]["reward"].items() if k != "grids"} == {
        k: v for k, v in cfg["dr"]["reward"].items() if k != "grids"
    }
    assert cfg["data"]["world"].get("label_temperature") != 0.0  # the input is not changed


def test_the_ablation_is_a_target_of_synthetic_configs_and_follows_the_claims_table(tmp_path):
    on, off = pipeline(smoke(ablation=True)).specs, pipeline(smoke()).specs
    assert on.ablation() and not off.ablation()
    claims = on.report_sections()[0]
    assert claims["items"] == [{"table": "claims.md"}, {"table": "ablation/label_noise.md"}]
    assert on.report_inputs()["ablation"] == ["results/smoke/ablation/label_noise.md"]
    assert off.report_inputs()["ablation"] == [] and off.report_sections()[0]["items"] == [{"table": "claims.md"}]
    real = yaml.safe_load((REPO / "configs" / "small-real-lm.yaml").read_text())
    real["report"]["ablation"] = True
    assert not Pipeline(real).specs.ablation()  # no world to take the label noise out of
    proc = snakemake(tmp_path, "-n", "label_noise_ablation", "--configfile", str(REPO / "config.yaml"), timeout=300)
    assert proc.returncode == 0 and "label_noise_ablation" in proc.stdout, proc.stderr[-2000:]
