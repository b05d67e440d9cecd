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
from core.report.spec_types import (
    Candidate,
    Column,
    FigureSpec,
    Row,
    SeedFiles,
    Selection,
    SettingsTable,
    Table,
    Wald,
    from_data,
    to_data,
)
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
    cell = evaluate_cell(SeedFiles(tuple(files)), Column("A", "metrics/acc", scale=100))
    # mean 70, sd 10, t_{.975,2} = 4.302653 -> half width 4.302653 * 10 / sqrt(3) = 24.841
    assert cell.mean == pytest.approx(70.0)
    assert cell.ci_high - cell.mean == pytest.approx(4.302652729749464 * 10 / math.sqrt(3), rel=1e-9)
    assert cell.mean - cell.ci_low == pytest.approx(cell.ci_high - cell.mean)
    assert cell.n == 3 and cell.run_ids == ["run0", "run1", "run2"]


def test_single_seed_has_no_interval_unless_the_file_has_one(tmp_path):
    f = metrics_file(tmp_path, "a", {"adv": 0.5, "lo": 0.1, "hi": 0.9})
    plain = evaluate_cell(SeedFiles((f,)), Column("x", "metrics/adv"))
    assert plain.mean == 0.5 and math.isnan(plain.ci_low) and math.isnan(plain.ci_high)
    boot = evaluate_cell(SeedFiles((f,)), Column("x", "metrics/adv", ci_keys=("metrics/lo", "metrics/hi")))
    assert (boot.ci_low, boot.ci_high) == (0.1, 0.9)


def test_selection_reports_the_best_validation_candidate(tmp_path):
    cands = []
    for beta, val, test in ((0.1, 0.2, 1.0), (1.0, 0.5, 2.0), (10.0, 0.3, 3.0)):
        select = (metrics_file(tmp_path, f"v{beta}", {"adv": val}),)
        cands.append(Candidate(f"b={beta}", select, (metrics_file(tmp_path, f"t{beta}", {"adv": test}),)))
    cell = evaluate_cell(Selection(tuple(cands), "metrics/adv"), Column("x", "metrics/adv"))
    assert cell.mean == 2.0 and cell.selected == "b=1.0"
    low = evaluate_cell(Selection(tuple(cands), "metrics/adv", minimize=True), Column("x", "metrics/adv"))
    assert low.selected == "b=0.1"


def test_wald_cell_is_the_paired_test_of_per_prompt_rewards(tmp_path):
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 50), rng.normal(0.6, 1.0, 50)
    fa = metrics_file(tmp_path, "a", {"rewards": a.tolist()})
    fb = metrics_file(tmp_path, "b", {"rewards": b.tolist()})
    cell = evaluate_cell(Wald((SeedFiles((fa,)), SeedFiles((fb,))), "metrics/rewards"), Column("p"))
    d = a - b
    z = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert cell.mean == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)


def test_missing_key_names_file_row_and_column(tmp_path):
    f = metrics_file(tmp_path, "a", {"acc": 0.5})
    spec = Table("t", "", "", "model", (Column("B", "metrics/nope"),), (Row("r1", {"B": SeedFiles((f,))}),))
    with pytest.raises(ValueError, match=r"row 'r1', column 'B'.*a\.json.*metrics/nope"):
        build_table(spec)
    with pytest.raises(ValueError, match="does not exist"):
        read_metric(str(tmp_path / "absent.json"), "metrics/acc")


def test_write_table_csv_and_markdown_agree(tmp_path):
    f1 = metrics_file(tmp_path, "a", {"acc": 0.5, "b": {"c": 0.25}}, run_id="abcdef123456")
    f2 = metrics_file(tmp_path, "b", {"acc": 0.75, "b": {"c": None}})
    cols = (Column("Acc", "metrics/acc", scale=100), Column("C", "metrics/b/c", scale=100))
    rows = tuple(Row(m, {"Acc": SeedFiles((f,)), "C": SeedFiles((f,))}, "g") for m, f in (("m1", f1), ("m2", f2)))
    spec = from_data(json.loads(json.dumps(to_data(Table("t", "T", "cap", "Model", cols, rows)))))  # as a rule sends it
    frame = write_table(spec, str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(csv["Acc"]) == [50.0, 75.0] and csv["run_ids"][0] == "abcdef123456"
    assert math.isnan(csv["C"][1])  # a null metric (an absent section) stays empty
    md = (tmp_path / "t.md").read_text()
    assert "| m1 | 50.0 | 25.0 | 1 | abcdef12 |" in md and "| **g** |" in md and "| m2 | 75.0 | – |" in md
    assert frame.shape[0] == 2


def test_settings_table_and_report(tmp_path):
    write_settings_table(
        SettingsTable("t7", "Table 7", "", ("Setting", "Value"), (("learning_rate", "1e-05"), ("LoRA r", "32"))),
        str(tmp_path / "tables" / "t7.csv"),
        str(tmp_path / "tables" / "t7.md"),
    )
    f = metrics_file(tmp_path, "x", {"adv": 0.1, "lo": 0.0, "hi": 0.2})
    col = Column("ρ = 0.5", "metrics/adv", ci_keys=("metrics/lo", "metrics/hi"), x=0.5)
    table = Table("fig", "", "", "Method", (col,), (Row("DPO", {"ρ = 0.5": SeedFiles((f,))}),))
    spec = FigureSpec("fig", "bias_lines", ylabel="adv", table=table)
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

    cols = tuple(
        Column(f"bias = {b}", "metrics/adv", ci_keys=("metrics/lo", "metrics/hi"), x=b) for b in (0.2, 0.5, 0.8)
    )
    f = {b: metrics_file(tmp_path, f"m{b}", {"adv": b, "lo": b - 0.1, "hi": b + 0.2}) for b in (0.2, 0.5, 0.8)}
    rows = (Row("DPO", {c.label: SeedFiles((f[c.x],)) for c in cols}),
            Row("IPO", {c.label: SeedFiles((f[c.x],)) for c in cols if c.x != 0.5}))  # fmt: skip
    fig, ax = plt.subplots()
    _bias_lines(FigureSpec("t", "bias_lines", table=Table("t", "", "", "Method", cols, rows)), ax)
    series = {c.get_label(): c for c in ax.containers}  # one errorbar container per row
    assert list(series["DPO"].lines[0].get_ydata()) == pytest.approx([0.2, 0.5, 0.8])
    assert list(series["IPO"].lines[0].get_ydata()) == pytest.approx([0.2, 0.8])
    bars = series["IPO"].lines[2][0].get_segments()
    assert [tuple(seg[:, 1]) for seg in bars] == [pytest.approx((0.1, 0.4)), pytest.approx((0.7, 1.0))]
    plt.close(fig)


def test_specs_travel_as_data_and_refuse_an_unknown_type():
    """A rule's params carry a spec as JSON (core.report.spec_types.to_data): it comes back equal,
    tuples and all, and a tag the consumer does not know is refused by name."""
    sel = Selection((Candidate("β=0.1", ("v.json",), ("t.json",)),), "metrics/advantage", minimize=True)
    table = Table("t", "T", "c", "Method", (Column("x", "metrics/a", 100, 2, ("lo", "hi"), 0.5),),
                  (Row("r", {"x": Wald((SeedFiles(("a.json",)), sel), "metrics/rewards")}, "g", 1.0),))  # fmt: skip
    assert from_data(json.loads(json.dumps(to_data(table)))) == table
    assert table.inputs() == ["a.json", "t.json", "v.json"]
    with pytest.raises(ValueError, match="unknown type 'Mystery'"):
        from_data({"__spec__": "Mystery", "x": 1})
