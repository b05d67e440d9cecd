"""The claims table from hand-made metrics files: every verdict rule, the orientation of the
effect, selection on validation (never test), degeneracy flags and failed gates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.eval.results import write_metrics
from core.report.claims import claims_table, verdict
from core.report.paper_claims import CLAIMS
from core.report.spec_types import (
    Candidate,
    ExactCell,
    FlattensBefore,
    MeanAbove,
    PairedCell,
    SeedFiles,
    Selection,
    SlopeCell,
)

SEEDS = range(5)


def metrics_file(path, accuracy: float, degenerate: bool = False) -> str:
    metrics = {"accuracy": accuracy, "scores": {"overall": accuracy}, "spread": {"degenerate": degenerate}}
    write_metrics(path, metrics, model_path="m", dataset_path="d", counts={"pairs": 10}, seed=0)
    return str(path)


def side(tmp_path, name: str, values, bench="rewardbench", degenerate=False) -> list[str]:
    return [
        metrics_file(tmp_path / f"{name}_s{s}_{bench}.json", v, degenerate) for s, v in zip(SEEDS, values, strict=True)
    ]


def paired_cell(cid, base, treat, degenerate=()):
    return PairedCell(cid, "rewardbench", "metrics/scores/overall", SeedFiles(tuple(base)), SeedFiles(tuple(treat)),
                      scale=100, degenerate=tuple(degenerate))  # fmt: skip


def row(frame: pd.DataFrame, cid: str) -> pd.Series:
    return frame[frame["claim"] == cid].iloc[0]


def test_verdict_rules():
    assert verdict(0.1, 0.3) == "reproduced"
    assert verdict(-0.3, -0.1) == "opposite"
    assert verdict(-0.1, 0.3) == "inconclusive"
    assert verdict(math.nan, math.nan) == "inconclusive"
    assert verdict(0.1, 0.3, available=False) == "n/a"


def test_paired_effects_intervals_and_verdicts(tmp_path):
    base = side(tmp_path, "btl", [0.60, 0.62, 0.61, 0.63, 0.60])
    up = side(tmp_path, "up", [0.65, 0.66, 0.66, 0.68, 0.64])  # +4.6 points on average, every seed
    down = side(tmp_path, "down", [0.55, 0.58, 0.57, 0.56, 0.55], bench="hhh")
    base_hhh = side(tmp_path, "btl", [0.60, 0.62, 0.61, 0.63, 0.60], bench="hhh")
    mixed = side(tmp_path, "mixed", [0.64, 0.58, 0.65, 0.59, 0.61], bench="mtbench")
    base_mt = side(tmp_path, "btl", [0.60, 0.62, 0.61, 0.63, 0.60], bench="mtbench")
    cells = {"a1": [paired_cell("a1", base, up)], "a2": [paired_cell("a2", base_hhh, down)],
             "a3": [paired_cell("a3", base_mt, mixed)]}  # fmt: skip
    frame = claims_table(cells, {})
    a1, a2, a3 = row(frame, "a1"), row(frame, "a2"), row(frame, "a3")
    diffs = 100 * (np.array([0.65, 0.66, 0.66, 0.68, 0.64]) - np.array([0.60, 0.62, 0.61, 0.63, 0.60]))
    assert a1["effect"] == pytest.approx(diffs.mean()) and a1["n_seeds"] == 5
    half = 2.7764451051977987 * diffs.std(ddof=1) / math.sqrt(5)  # t_{0.975, 4}
    assert a1["ci_low"] == pytest.approx(diffs.mean() - half) and a1["ci_high"] == pytest.approx(diffs.mean() + half)
    assert a1["verdict"] == "reproduced" and a2["verdict"] == "opposite" and a3["verdict"] == "inconclusive"
    assert a3["ci_low"] < 0 < a3["ci_high"]
    # claims this config has no cells for are n/a, not missing
    assert set(frame["claim"]) >= {c.id for c in CLAIMS} - {"a1", "a2", "a3"}
    assert (frame[frame["claim"] == "b1"]["verdict"] == "n/a").all()


def test_direction_minus_one_orients_the_effect(tmp_path):
    small = side(tmp_path, "small", [0.74, 0.75, 0.73, 0.74, 0.76])
    large = side(tmp_path, "large", [0.56, 0.60, 0.55, 0.58, 0.57])
    frame = claims_table({"h": [paired_cell("h", small, large)]}, {})
    h = row(frame, "h")
    assert h["effect"] > 0 and h["verdict"] == "reproduced"  # the paper says large rho is worse: it is


def test_one_seed_has_no_interval(tmp_path):
    base = [metrics_file(tmp_path / "b.json", 0.6)]
    treat = [metrics_file(tmp_path / "t.json", 0.9)]
    a1 = row(claims_table({"a1": [paired_cell("a1", base, treat)]}, {}), "a1")
    assert a1["effect"] == pytest.approx(30.0) and a1["n_seeds"] == 1
    assert math.isnan(a1["ci_low"]) and a1["verdict"] == "inconclusive"


def test_treated_row_is_chosen_on_validation_not_test(tmp_path):
    base = side(tmp_path, "btl", [0.6] * 5)
    # rho 0.2 is best on validation, rho 0.8 on test: the claim must report rho 0.2's test numbers
    cand = []
    for rho, val, test in (("0.2", 0.70, 0.62), ("0.8", 0.50, 0.90)):
        cand.append(Candidate(f"ρ={rho}", tuple(side(tmp_path, f"r{rho}", [val] * 5, bench="val")),
                              tuple(side(tmp_path, f"r{rho}", [test] * 5, bench="rewardbench"))))  # fmt: skip
    cell = PairedCell("a1", "rewardbench", "metrics/scores/overall", SeedFiles(tuple(base)),
                      Selection(tuple(cand), "metrics/accuracy"), scale=100)  # fmt: skip
    a1 = row(claims_table({"a1": [cell]}, {}), "a1")
    assert a1["effect"] == pytest.approx(2.0) and "ρ=0.2" in a1["treatment"]


def test_degenerate_models_and_failed_gates_are_flagged_beside_the_verdict(tmp_path):
    base = side(tmp_path, "btl", [0.60, 0.62, 0.61, 0.63, 0.60])
    flat = side(tmp_path, "flat", [0.50, 0.50, 0.50, 0.50, 0.50], degenerate=True)
    cell = paired_cell("a1", base, flat, degenerate=[(f, "metrics/spread/degenerate") for f in base + flat])
    gates = {"btl_learned": MeanAbove("metrics/accuracy", SeedFiles(tuple(base)),
                                      (metrics_file(tmp_path / "longer.json", 0.7),))}  # fmt: skip
    frame = claims_table({"a1": [cell]}, gates)
    a1 = row(frame, "a1")
    assert a1["verdict"] == "opposite"  # the collapse keeps its computed verdict
    assert a1["flags"] == "degenerate: flat all; failed gate btl_learned"  # every seed of it; the gate's name
    assert a1["flag_files"].split("; ") == flat  # the files: the CSV only
    assert frame.attrs["gates"] == {"btl_learned": False}


def test_degenerate_flags_are_summarised_per_grid_point_and_the_table_reads_in_one_screen(tmp_path):
    """The issue's a1 row: DR reward models degenerate at rho 0.6 (seeds 0,1,3,4) and 1.0 (all) read
    ``degenerate: ρ=0.6 seeds 0,1,3,4; ρ=1 all`` (rho alone tells the cell's models apart); every
    row of claims.md and of the report's HTML table but its claim text fits 160 columns; claims.csv
    keeps each file, in flag_files."""
    import html
    import re

    from core.report.claims import write_claims
    from core.report.report import markdown_to_html

    def grid(div: str, rho: str, flagged=()) -> list[str]:
        folder = tmp_path / f"results/demo/metrics/dr/rm/unfiltered/{div}/rho{rho}"
        return [metrics_file(folder / f"seed{s}/rewardbench.json", 0.5 + s / 100, s in flagged) for s in SEEDS]

    base, chosen = grid("none", "0"), grid("tv", "0.2")
    bad = grid("tv", "0.6", flagged=(0, 1, 3, 4)) + grid("tv", "1", flagged=SEEDS)
    checked = [(f, "metrics/spread/degenerate") for f in base + chosen + bad]
    pick = Selection((Candidate("ρ=0.2", tuple(chosen), tuple(chosen)),), "metrics/accuracy")
    cell = PairedCell("a1", "rewardbench", "metrics/scores/overall", SeedFiles(tuple(base)), pick, scale=100,
                      degenerate=tuple(checked))  # fmt: skip
    frame = write_claims({"a1": [cell]}, {}, str(tmp_path / "claims.csv"), str(tmp_path / "claims.md"))
    assert row(frame, "a1")["flags"] == "degenerate: ρ=0.6 seeds 0,1,3,4; ρ=1 all"
    csv = pd.read_csv(tmp_path / "claims.csv").set_index("claim")
    assert csv.loc["a1", "flag_files"].split("; ") == [f for f in bad if "rho0.6/seed2" not in f]  # each file
    markdown = (tmp_path / "claims.md").read_text()
    assert "rewardbench.json" not in markdown and "ρ=0.6 seeds 0,1,3,4" in markdown  # only the summary
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "paper says" not in line]
    assert rows and all(len(line) - len(line.split(" | ")[1]) <= 160 for line in rows), rows
    for tr in re.findall(r"<tr>(.*?)</tr>", markdown_to_html(markdown, str(tmp_path), "t"), flags=re.S)[1:]:
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        assert "json" not in tr and len(" | ".join(cells[:1] + cells[2:])) <= 160, cells


@pytest.mark.parametrize(
    ("checked", "flagged", "summary"),
    [
        # PPO: the baseline (no variant, no divergence, rho 0) and a treatment grid point both flagged
        (
            [f"ppo/none/none/rho0/seed{s}/id.json" for s in SEEDS]
            + [f"ppo/vA/tv/rho{r}/seed{s}/id.json" for r in ("0.2", "1") for s in SEEDS],
            ["ppo/none/none/rho0/seed2/id.json", *[f"ppo/vA/tv/rho1/seed{s}/id.json" for s in SEEDS]],
            "degenerate: ρ=0 seed 2; ρ=1 all",
        ),  # fmt: skip
        # one model on two benchmarks: the benchmark tells them apart
        (
            [f"rm/tv/rho{r}/seed{s}/{b}.json" for r in ("0", "0.6") for b in ("hhh", "id") for s in SEEDS],
            ["rm/tv/rho0.6/seed0/hhh.json", "rm/tv/rho0.6/seed1/hhh.json", "rm/tv/rho0/seed3/id.json"],
            "degenerate: ρ=0 id seed 3; ρ=0.6 hhh seeds 0,1",
        ),  # fmt: skip
        # grid points sort by number; files named <model>_s<N>_<bench>.json
        (
            [f"m/beta{b}_s{s}_oracle.json" for b in ("0.1", "0.05", "10") for s in SEEDS],
            [f"m/beta{b}_s{s}_oracle.json" for b in ("10", "0.05") for s in SEEDS],
            "degenerate: β=0.05 all; β=10 all",
        ),
        # names before coordinates: the divergence goes, rho stays; a plain name where nothing else differs
        (
            [f"x/{d}/rho0.5/seed{s}/id.json" for d in ("tv", "chi2") for s in SEEDS],
            ["x/chi2/rho0.5/seed4/id.json"],
            "degenerate: chi2 seed 4",
        ),  # fmt: skip
    ],
)
def test_degenerate_summary_names_each_flagged_model_by_what_tells_it_apart(checked, flagged, summary):
    from core.report.claims import degenerate_summary

    assert degenerate_summary(flagged, checked) == summary


def theory_csv(path, exponent: float, noise: float = 0.02, reps: int = 6) -> str:
    rng = np.random.default_rng(0)
    rows = [{"steps": t, "replicate": r, "suboptimality": 0.5 * t**exponent * (1 + noise * rng.standard_normal())}
            for t in (32, 64, 128, 256, 512, 1024) for r in range(reps)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_rate_claims_are_equivalence_tests(tmp_path):
    good = SlopeCell("g1", theory_csv(tmp_path / "good.csv", -0.5), claimed=-0.5, margin=0.1)
    slow = SlopeCell("g3", theory_csv(tmp_path / "slow.csv", -0.2), claimed=-0.5, margin=0.1)
    frame = claims_table({"g1": [good], "g3": [slow]}, {})
    g1, g3 = row(frame, "g1"), row(frame, "g3")
    assert g1["verdict"] == "reproduced" and g1["ci_low"] > 0 and g1["n_seeds"] == 6
    assert g3["effect"] == pytest.approx(0.1 - 0.3, abs=0.02) and g3["verdict"] == "opposite"


def test_exact_claims(tmp_path):
    path = tmp_path / "npg.json"
    write_metrics(path, {"summary": {"fitted_contraction": 0.56, "a": 1.5, "b": 1.12}}, model_path="none",
                  dataset_path="none", counts={}, seed=0)  # fmt: skip
    cells = {
        "g2": [ExactCell("g2", str(path), "metrics/summary/fitted_contraction", reference=1.0)],
        "f": [ExactCell("f", str(path), "metrics/summary/a", reference_key="metrics/summary/b")],
    }
    frame = claims_table(cells, {})
    assert row(frame, "g2")["effect"] == pytest.approx(0.44) and row(frame, "g2")["verdict"] == "reproduced"
    assert row(frame, "f")["effect"] == pytest.approx(0.38) and row(frame, "f")["verdict"] == "reproduced"


def train_file(path, steps, values) -> str:
    write_metrics(path, {"curves": {"eval_loss": {"step": list(steps), "value": list(values)}}}, model_path="m",
                  dataset_path="d", counts={"pairs": 10}, seed=0)  # fmt: skip
    return str(path)


def test_convergence_gates_flag_the_claims_resting_on_an_unconverged_family(tmp_path):
    """A family whose seed-mean validation loss still falls at its budget fails its gate, and every
    claim resting on it says so beside an unchanged verdict; a flattened one passes."""
    steps = list(range(0, 101, 10))
    flat = [1.0 + 0.5 * math.exp(-s / 8) for s in steps]  # flattens by ~step 40
    falling = [2.0 - 0.01 * s for s in steps]  # still decreasing at step 100
    rm = [train_file(tmp_path / f"rm{s}.json", steps, [v + 0.001 * s for v in flat]) for s in SEEDS]
    dpo = [train_file(tmp_path / f"dpo{s}.json", steps, falling) for s in SEEDS]
    gates = {"rm_converged": FlattensBefore(tuple(rm), 100), "dpo_converged": FlattensBefore(tuple(dpo), 100)}
    base = side(tmp_path, "btl", [0.60, 0.62, 0.61, 0.63, 0.60])
    up = side(tmp_path, "up", [0.65, 0.66, 0.66, 0.68, 0.64])
    base_id = side(tmp_path, "dpo", [0.60, 0.62, 0.61, 0.63, 0.60], bench="id")
    up_id = side(tmp_path, "drdpo", [0.65, 0.66, 0.66, 0.68, 0.64], bench="id")
    frame = claims_table({"a1": [paired_cell("a1", base, up)], "b1": [paired_cell("b1", base_id, up_id)]}, gates)
    assert frame.attrs["gates"] == {"rm_converged": True, "dpo_converged": False}
    assert "rm_converged" not in row(frame, "a1")["flags"]
    assert row(frame, "b1")["verdict"] == "reproduced"
    assert "failed gate dpo_converged" in row(frame, "b1")["flags"]
