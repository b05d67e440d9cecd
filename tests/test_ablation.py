"""The label-noise ablation (core.report.ablation, rule label_noise_ablation): its rows from hand-made
metrics files (degenerate seeds, paired DR - BTL difference and its Student-t interval), the
noise-free config it trains, its place in the DAG (synthetic worlds with report.ablation only) and in
the report's claims section."""

from __future__ import annotations

import math

import pytest
import yaml
from test_workflow import REPO, _make_dry_run, job_stats, smoke_config, snakemake, write_config

from core.eval.results import write_metrics
from core.plan import Pipeline
from core.plan.config import validate_config
from core.report.ablation import ablation_markdown, ablation_rows, noise_free
from core.report.report import assemble_markdown
from tests.conftest import packaged_as_hub

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
    none = ablation_markdown([{**r, "degenerate_seeds": []}, {**r, "label_temperature": 0.0, "degenerate_seeds": []}])
    assert "no collapse for label noise to explain" in none and "does not shrink" not in none
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


def test_every_synthetic_world_has_the_rule_and_report_ablation_puts_it_after_the_claims_table():
    on, off = pipeline(smoke(ablation=True)).specs, pipeline(smoke()).specs
    assert on.ablation_rule() and off.ablation_rule()  # `make ablation` works for any synthetic world
    assert on.ablation() and not off.ablation()
    claims = on.report_sections()[0]
    assert claims["items"] == [{"table": "claims.md"}, {"table": "ablation/label_noise.md"}]
    assert on.report_inputs()["ablation"] == ["results/smoke/ablation/label_noise.md"]
    assert off.report_inputs()["ablation"] == [] and off.report_sections()[0]["items"] == [{"table": "claims.md"}]
    real = packaged_as_hub(yaml.safe_load((REPO / "configs" / "small-real-lm.yaml").read_text()))
    for spec in real["data"]["sources"].values():  # a folder that exists wherever the checkout is
        spec["source"] = str(REPO / "tests" / "fixtures" / "data" / "hhh_alignment")
    real["report"]["ablation"] = True
    assert not Pipeline(real).specs.ablation_rule() and not Pipeline(real).specs.ablation()  # no label noise to remove


def test_make_ablation_and_make_demo_build_the_rule_on_the_default_config(tmp_path):
    """`make ablation`'s command plans the rule (with the main grid's reward models it reads), and
    `make demo` plans it once too: config.yaml sets report.ablation."""
    assert _make_dry_run(tmp_path, "ablation")["label_noise_ablation"] == 1
    stats = _make_dry_run(tmp_path, "demo")
    assert stats["label_noise_ablation"] == 1 and stats["report"] == 1, stats


def test_a_real_data_config_has_no_ablation_rule_even_when_asked(tmp_path):
    cfg = packaged_as_hub(yaml.safe_load((REPO / "configs" / "small-real-lm.yaml").read_text()))
    for spec in cfg["data"]["sources"].values():
        if not (REPO / spec["source"]).exists():
            pytest.skip(f"small-real-lm.yaml: its data {spec['source']} is not beside this checkout")
        spec["source"] = str(REPO / spec["source"])
    cfg["report"]["ablation"] = True
    config = write_config(tmp_path / "real.yaml", cfg)
    dag = snakemake(tmp_path, "-n", "all", "--configfile", str(config), timeout=300)
    assert dag.returncode == 0 and "report" in job_stats(dag.stdout), (dag.stdout + dag.stderr)[-2000:]
    assert "label_noise_ablation" not in dag.stdout
    alone = snakemake(tmp_path, "-n", "label_noise_ablation", "--configfile", str(config), timeout=300)
    assert alone.returncode != 0 and "No rule to produce label_noise_ablation" in alone.stdout + alone.stderr


def test_the_report_holds_the_ablation_below_the_claims_table(tmp_path):
    """The report's claims section as the report rule writes it (core.report.report) with the
    ablation's file present: its findings and table follow the claims table, before the next section."""
    p = pipeline(smoke(ablation=True))
    write_grid(tmp_path, p, {0.0: [0.60, 0.70, 0.80], 0.5: [0.50, 0.50, 0.74]}, {0.5: (0, 1)})
    root = tmp_path / p.paths.root
    (root / "claims.md").write_text("### Claims\n\n| claim | verdict |\n| --- | --- |\n| a | reproduced |\n")
    (root / "ablation").mkdir()
    (root / "ablation" / "label_noise.md").write_text(ablation_markdown(ablation_rows(tmp_path, p)))
    (root / "ablation" / "label_noise.json").write_text("[]")
    sections = p.specs.report_sections()[:1] + [{"heading": "Next", "items": []}]
    md = assemble_markdown("R", "", sections, str(root))
    claims, ablation, after = md.index("| a | reproduced |"), md.index("the label-noise ablation"), md.index("## Next")
    assert claims < ablation < md.index("| 0.5 | id | 0.5 | 70.0 | 58.0 | -12.00 [") < after
    assert "label temperature 0.5: 2 of 3." in md and "*Source: `ablation/label_noise.md` (and `.json`).*" in md
