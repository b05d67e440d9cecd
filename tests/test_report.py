"""core.report: table numbers, intervals, selection, Wald tests, figures and the report document,
on metrics files written by the tests (core.eval.results layout)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.report.figures import make_figure
from core.report.report import write_report
from core.report.tables import (
    build_table,
    evaluate_cell,
    read_metric,
    write_settings_table,
    write_table,
)


def metrics_file(tmp_path, name, metrics, run_id="", train_run_id=""):
    path = tmp_path / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "schema": "robust-rlhf/metrics/v1",
                "metrics": metrics,
                "extra": {"run_id": run_id, "train_run_id": train_run_id},
            }
        )
    )
    return str(path)


def test_seed_mean_and_student_t_interval(tmp_path):
    files = [metrics_file(tmp_path, f"s{i}", {"acc": v}, run_id=f"run{i}") for i, v in enumerate([0.6, 0.7, 0.8])]
    cell = evaluate_cell({"files": files}, {"label": "A", "key": "metrics/acc", "scale": 100})
    # mean 70, sd 10, t_{.975,2} = 4.302653 -> half width 4.302653 * 10 / sqrt(3) = 24.841
    assert cell.mean == pytest.approx(70.0)
    assert cell.ci_high - cell.mean == pytest.approx(4.302652729749464 * 10 / math.sqrt(3), rel=1e-9)
    assert cell.mean - cell.ci_low == pytest.approx(cell.ci_high - cell.mean)
    assert cell.n == 3 and cell.run_ids == ["run0", "run1", "run2"]


def test_single_seed_has_no_interval_unless_the_file_has_one(tmp_path):
    f = metrics_file(tmp_path, "a", {"adv": 0.5, "lo": 0.1, "hi": 0.9})
    plain = evaluate_cell({"files": [f]}, {"label": "x", "key": "metrics/adv"})
    assert plain.mean == 0.5 and math.isnan(plain.ci_low) and math.isnan(plain.ci_high)
    boot = evaluate_cell({"files": [f]}, {"label": "x", "key": "metrics/adv", "ci_keys": ["metrics/lo", "metrics/hi"]})
    assert (boot.ci_low, boot.ci_high) == (0.1, 0.9)


def test_selection_reports_the_best_validation_candidate(tmp_path):
    cands = []
    for beta, val, test in ((0.1, 0.2, 1.0), (1.0, 0.5, 2.0), (10.0, 0.3, 3.0)):
        cands.append(
            {
                "label": f"b={beta}",
                "select": [metrics_file(tmp_path, f"v{beta}", {"adv": val})],
                "files": [metrics_file(tmp_path, f"t{beta}", {"adv": test})],
            }
        )
    cell = evaluate_cell({"candidates": cands, "select_key": "metrics/adv"}, {"label": "x", "key": "metrics/adv"})
    assert cell.mean == 2.0 and cell.selected == "b=1.0"
    low = evaluate_cell(
        {"candidates": cands, "select_key": "metrics/adv", "select": "min"}, {"label": "x", "key": "metrics/adv"}
    )
    assert low.selected == "b=0.1"


def test_wald_cell_is_the_paired_test_of_per_prompt_rewards(tmp_path):
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 50), rng.normal(0.6, 1.0, 50)
    fa = metrics_file(tmp_path, "a", {"rewards": a.tolist()})
    fb = metrics_file(tmp_path, "b", {"rewards": b.tolist()})
    cell = evaluate_cell({"wald": [{"files": [fa]}, {"files": [fb]}], "samples_key": "metrics/rewards"}, {"label": "p"})
    d = a - b
    z = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert cell.mean == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)


def test_missing_key_names_file_row_and_column(tmp_path):
    f = metrics_file(tmp_path, "a", {"acc": 0.5})
    spec = {
        "name": "t",
        "columns": [{"label": "B", "key": "metrics/nope"}],
        "rows": [{"label": "r1", "cells": {"B": {"files": [f]}}}],
    }
    with pytest.raises(ValueError, match=r"row 'r1', column 'B'.*a\.json.*metrics/nope"):
        build_table(spec)
    with pytest.raises(ValueError, match="does not exist"):
        read_metric(str(tmp_path / "absent.json"), "metrics/acc")


def test_write_table_csv_and_markdown_agree(tmp_path):
    f1 = metrics_file(tmp_path, "a", {"acc": 0.5, "b": {"c": 0.25}}, run_id="abcdef123456")
    f2 = metrics_file(tmp_path, "b", {"acc": 0.75, "b": {"c": None}})
    spec = {
        "name": "t",
        "title": "T",
        "caption": "cap",
        "row_header": "Model",
        "columns": [
            {"label": "Acc", "key": "metrics/acc", "scale": 100},
            {"label": "C", "key": "metrics/b/c", "scale": 100},
        ],
        "rows": [
            {"label": "m1", "group": "g", "cells": {"Acc": {"files": [f1]}, "C": {"files": [f1]}}},
            {"label": "m2", "group": "g", "cells": {"Acc": {"files": [f2]}, "C": {"files": [f2]}}},
        ],
    }
    frame = write_table(spec, str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(csv["Acc"]) == [50.0, 75.0] and csv["run_ids"][0] == "abcdef123456"
    assert math.isnan(csv["C"][1])  # a null metric (an absent section) stays empty
    md = (tmp_path / "t.md").read_text()
    assert "| m1 | 50.0 | 25.0 | 1 | abcdef12 |" in md and "| **g** |" in md and "| m2 | 75.0 | – |" in md
    assert frame.shape[0] == 2


def test_settings_table_and_report(tmp_path):
    write_settings_table(
        {
            "name": "t7",
            "title": "Table 7",
            "columns": ["Setting", "Value"],
            "rows": [["learning_rate", "1e-05"], ["LoRA r", 32]],
        },
        str(tmp_path / "tables" / "t7.csv"),
        str(tmp_path / "tables" / "t7.md"),
    )
    f = metrics_file(tmp_path, "x", {"adv": 0.1, "lo": 0.0, "hi": 0.2})
    spec = {
        "name": "fig",
        "kind": "bias_lines",
        "ylabel": "adv",
        "table": {
            "name": "fig",
            "row_header": "Method",
            "columns": [{"label": "ρ = 0.5", "x": 0.5, "key": "metrics/adv", "ci_keys": ["metrics/lo", "metrics/hi"]}],
            "rows": [{"label": "DPO", "cells": {"ρ = 0.5": {"files": [f]}}}],
        },
    }
    make_figure(spec, str(tmp_path / "figures" / "fig.png"))
    assert (tmp_path / "figures" / "fig.png").read_bytes()[:4] == b"\x89PNG"
    text = write_report(
        str(tmp_path / "report.md"),
        str(tmp_path / "report.html"),
        "R",
        "intro",
        [{"heading": "S", "items": [{"table": "tables/t7.md"}, {"figure": "figures/fig.png"}]}],
    )
    assert "| learning_rate | 1e-05 |" in text and "![fig](figures/fig.png)" in text
    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html
    with pytest.raises(ValueError, match="does not exist"):
        write_report(str(tmp_path / "r2.md"), None, "R", "", [{"heading": "S", "items": [{"table": "tables/no.md"}]}])


def test_report_contents_link_to_every_section(tmp_path):
    import re

    from core.report.report import assemble_markdown, markdown_to_html

    (tmp_path / "t.md").write_text("### T\n\n| a |\n| --- |\n| 1 |\n")
    sections = [{"heading": "Claims: what this run says", "items": [{"table": "t.md"}]},
                {"heading": "Distributionally robust RLHF (DR paper)", "items": []}]  # fmt: skip
    md = assemble_markdown("R", "", sections, str(tmp_path))
    links = re.findall(r"\]\(#([a-z0-9-]+)\)", md)
    assert links == ["claims-what-this-run-says", "distributionally-robust-rlhf-dr-paper"]
    html = markdown_to_html(md, str(tmp_path), "R")
    assert all(f'id="{a}"' in html and f'href="#{a}"' in html for a in links)


def test_bias_lines_join_the_biases_a_row_was_run_at(tmp_path):
    """A row without a cell at some bias (report.rows: claims) is drawn through its other biases:
    no NaN point breaks its line, and every point keeps its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.report.figures import _bias_lines

    cols = [{"label": f"bias = {b}", "x": b, "key": "metrics/adv", "ci_keys": ["metrics/lo", "metrics/hi"]}
            for b in (0.2, 0.5, 0.8)]  # fmt: skip
    f = {b: metrics_file(tmp_path, f"m{b}", {"adv": b, "lo": b - 0.1, "hi": b + 0.2}) for b in (0.2, 0.5, 0.8)}
    rows = [{"label": "DPO", "cells": {c["label"]: {"files": [f[c["x"]]]} for c in cols}},
            {"label": "IPO", "cells": {c["label"]: {"files": [f[c["x"]]]} for c in cols if c["x"] != 0.5}}]  # fmt: skip
    fig, ax = plt.subplots()
    _bias_lines({"table": {"name": "t", "row_header": "Method", "columns": cols, "rows": rows}}, ax)
    series = {c.get_label(): c for c in ax.containers}  # one errorbar container per row
    assert list(series["DPO"].lines[0].get_ydata()) == pytest.approx([0.2, 0.5, 0.8])
    assert list(series["IPO"].lines[0].get_ydata()) == pytest.approx([0.2, 0.8])
    bars = series["IPO"].lines[2][0].get_segments()
    assert [tuple(seg[:, 1]) for seg in bars] == [pytest.approx((0.1, 0.4)), pytest.approx((0.7, 1.0))]
    plt.close(fig)
