"""The figures of a config (core.report.spec_types.FigureSpec) and the report's outline: which
tables and figures, in the papers' order, under which headings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from core.plan.claim_plan import ClaimPlan
from core.plan.distill_tables import B1_PANELS
from core.plan.paths import Paths, fmt
from core.report.spec_types import FigureSpec, Series, SettingsTable, Table
from core.vocab import METHOD_LABELS

#: the DR paper's tables in the report's order
DR_ORDER = ("table1", "table2", "table3", "table3_oracle", "table4", "table5", "table6", "table8", "table9",
            "table10", "table11", "table12", "table14", "table15", "table_rb2", "table7", "table13")  # fmt: skip
#: figure -> the data tables shown under it (distillation paper's order)
DISTILL_ORDER = (
    ("figure2", ("figure2", "figure2_wald")),
    ("figureB1", ("figureB1",)),
    ("figureB3", ("figureB3",)),
    ("figureB4", ("figureB4",)),
    ("figureB5", ("figureB5",)),
)
#: every figure: its kind (core.report.figures.FIGURE_KINDS), the data table it plots, its y label
FIGURES = {
    "figure2": FigureSpec("figure2", "bias_lines", ylabel="oracle reward advantage over SFT"),
    "figureB1": FigureSpec("figureB1", "curves"),
    "figureB3": FigureSpec("figureB3", "stacked_bars", ylabel="share of examples (%)"),
    "figureB4": FigureSpec("figureB4", "sweep", ylabel="validation oracle advantage"),
    "figureB5": FigureSpec("figureB5", "bias_lines", ylabel="validation oracle advantage"),
    "learning_curves": FigureSpec("learning_curves", "learning_curves"),
}
#: the figures drawn from series of train.json files rather than from a data table
SERIES_FIGURES = ("figureB1", "learning_curves")


def figure_names(tables: Mapping[str, object]) -> list[str]:
    """The figures whose data table this config has."""
    return [n for n in FIGURES if n in SERIES_FIGURES or n in tables]


def learning_series(plan: ClaimPlan) -> tuple[Series, ...]:
    """The learning-curve figure: each family with its budget, then the most robust DR row of
    the reward-model and DPO grids beside it (same budget and learning rate)."""
    fams = plan.learning_families()
    p, pl, seeds, cfg = plan.paths, plan.p, plan.p.seeds(), plan.cfg
    series = [fams["rm"]]
    variant = cfg["report"]["rm_variant"]
    tv = [r for _, dv, r in pl.rm_grid(variant, "tv") if dv == "tv"]
    if tv:
        series.append(Series(f"DR RM (TV, ρ={fmt(tv[-1])})",
                             tuple(p.metrics(p.rm(variant, "tv", tv[-1], s), "train") for s in seeds),
                             fams["rm"].budget))  # fmt: skip
    series.append(fams["dpo"])
    dpo = [(dv, r) for dv, r in pl.dpo_grid() if dv != "none"]
    if dpo:
        (dv, r), v = dpo[-1], cfg["dr"]["dpo"]["variant"]
        files = tuple(p.metrics(p.dpo(v, dv, r, s), "train") for s in seeds)
        series.append(Series(f"DR DPO ({dv}, ρ={fmt(r)})", files, fams["dpo"].budget))
    if "distill" in fams:
        series.append(fams["distill"])
    return tuple(series)


def figure_spec(name: str, tables: Mapping[str, Table | SettingsTable], plan: ClaimPlan) -> FigureSpec:
    """The figure ``name`` of this config: its data table, or its series of training curves."""
    fig = FIGURES[name]
    if name == "learning_curves":
        return replace(fig, series=learning_series(plan),
                       title="Training and validation loss per seed (budgets: docs/claims.md)")  # fmt: skip
    if name == "figureB1":
        b1 = plan.cfg["report"]["figureB1"]
        series = tuple(Series(METHOD_LABELS[m], plan.distill_seed_files(m, b1["bias"], b1["beta"], g, "train"))
                       for m, g in plan.b1_series())  # fmt: skip
        return replace(fig, series=series, panels=B1_PANELS,
                       title=f"Likelihood collapse (bias {fmt(b1['bias'])}, beta {fmt(b1['beta'])})")  # fmt: skip
    return replace(fig, table=tables[name])


def report_inputs(paths: Paths, tables: list[str], figures: list[str], theory: list[str]) -> dict[str, list[str]]:
    """The report rule's inputs: the claims table, every table and figure, and the theory results."""
    return {
        "claims": [paths.claims("md"), paths.claims("csv")],
        "tables": [paths.table(n) for n in tables],
        "csvs": [paths.table(n, "csv") for n in tables],
        "figures": [paths.figure(n) for n in figures],
        "theory": [paths.figure(f"theory_{n}") for n in theory]
        + [paths.table(f"theory_{n}", "csv") for n in theory]
        + [paths.metrics("theory", n) for n in theory],
    }


def report_sections(
    tables: list[str], figures: list[str], theory: list[str], ablation: str | None = None
) -> list[dict]:
    """The document's outline: headings with tables / figures in paper order; ``ablation`` (the
    label-noise ablation's table, core.report.ablation) follows the claims table."""
    dr = [{"table": f"tables/{n}.md"} for n in DR_ORDER if n in tables]
    distill: list[dict] = []
    for fig, tabs in DISTILL_ORDER:
        if fig in figures:
            distill.append({"figure": f"figures/{fig}.png"})
        distill += [{"table": f"tables/{t}.md"} for t in tabs if t in tables]
    items: list[dict] = []
    for n in theory:
        items += [{"figure": f"figures/theory_{n}.png"},
                  {"summary": f"metrics/theory/{n}.json", "csv": f"tables/theory_{n}.csv"}]  # fmt: skip
    return [
        {
            "heading": "Claims: what this run says about each paper's claims",
            "items": [{"table": "claims.md"}, *([{"table": ablation}] if ablation else [])],
        },  # fmt: skip
        {"heading": "Training budgets: loss curves", "items": [{"figure": "figures/learning_curves.png"}]},
        {"heading": "Distributionally robust RLHF (DR paper)", "items": dr},
        {"heading": "Reward-model distillation and pessimism (distillation paper)", "items": distill},
        {"heading": "Theory experiments", "items": items},
    ]
