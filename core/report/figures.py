"""The distillation paper's figures from the workflow's metrics files.

A figure is a :class:`core.report.spec_types.FigureSpec`. Every figure except B.1 and the
learning curves plots its table spec (:mod:`core.report.tables`), so a figure and its data table
show the same numbers:

* ``bias_lines`` (Figure 2, B.5): one line per row over the columns' ``x`` (the length bias,
  each series shifted slightly sideways), error bars = the cells' 95% intervals (bootstrap with
  one seed, Student-t over seeds otherwise).
* ``stacked_bars`` (Figure B.3): per row (a length bias) the columns' shares stacked to 100%.
* ``sweep`` (Figure B.4): one panel per row group (a method), x = the row's ``x`` (beta or tau,
  log scale), one line per column (a length bias).
* ``learning_curves`` (the budgets): training and validation loss per seed of each model family
  (its :class:`~core.report.spec_types.Series`), with the plateau step of the seed-mean
  validation curve (core.report.convergence.family_convergence).
* ``curves`` (Figure B.1): step curves of training-time probes read from ``train.json`` files
  (``metrics/curves/<key>``), averaged over seeds at common steps, one panel per quantity.

:func:`learning_curves` draws training and validation loss curves per seed, one panel per model,
with the plateau step of :mod:`core.report.convergence` (how a training budget is chosen).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from core.atomic import atomic_savefig
from core.report.convergence import family_convergence, mean_curve
from core.report.spec_types import FigureSpec
from core.report.tables import build_table

__all__ = ["FIGURE_KINDS", "learning_curves", "make_figure"]

FIGURE_KINDS = ("bias_lines", "stacked_bars", "sweep", "curves", "learning_curves")


def _figure(ncols: int = 1, nrows: int = 1, width: float = 4.4, height: float = 3.4):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _shared_legend(fig: Any, ax: Any, title: str | None = None) -> None:
    """One legend for the whole figure, below the panels, so no legend covers data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8, title=title)


def _save(fig: Any, path: str) -> None:
    atomic_savefig(fig, path, format="png", dpi=110, bbox_inches="tight")


def _finite(x: float) -> bool:
    return x is not None and isinstance(x, float | int) and math.isfinite(x)


def _bias_lines(spec: FigureSpec, ax: Any) -> None:
    table = spec.table
    frame, _ = build_table(table)
    header = table.row_header
    cols = table.columns
    xs = [float(c.x) for c in cols]
    span = (max(xs) - min(xs)) or 1.0
    k = len(frame)
    for i, (_, rec) in enumerate(frame.iterrows()):
        # a small horizontal offset per series keeps overlapping error bars apart
        shifted = [x + (i - (k - 1) / 2) * 0.012 * span for x in xs]
        # a bias this row was not run at (report.rows: claims) is left out, so the line joins the rest
        points = [(x, rec[c.label], rec[f"{c.label} ci_low"], rec[f"{c.label} ci_high"])
                  for x, c in zip(shifted, cols, strict=True) if _finite(rec[c.label])]  # fmt: skip
        if not points:
            continue
        err = [[y - lw if _finite(lw) else 0.0 for _, y, lw, _ in points],
               [h - y if _finite(h) else 0.0 for _, y, _, h in points]]  # fmt: skip
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=err, marker="o", capsize=3,
                    label=str(rec[header]))  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("length bias (share of pairs preferring the longer response)")
    ax.set_ylabel(spec.ylabel)


def _stacked_bars(spec: FigureSpec, ax: Any) -> None:
    table = spec.table
    frame, _ = build_table(table)
    header = table.row_header
    labels = [str(v) for v in frame[header]]
    bottom = [0.0] * len(labels)
    for col in table.columns:
        vals = [0.0 if not _finite(v) else float(v) for v in frame[col.label]]
        ax.bar(labels, vals, bottom=bottom, label=col.label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xlabel(header)
    ax.set_ylabel(spec.ylabel)


def _sweep(spec: FigureSpec, fig: Any, axes: Any) -> None:
    table = spec.table
    frame, _ = build_table(table)
    groups = list(dict.fromkeys(row.group for row in table.rows))
    for k, (ax, group) in enumerate(zip(axes.flat, groups, strict=False)):
        idx = [i for i, row in enumerate(table.rows) if row.group == group]
        xs = [float(table.rows[i].x) for i in idx]
        for col in table.columns:
            ys = [frame.iloc[i][col.label] for i in idx]
            ax.plot(xs, ys, marker="o", label=col.label)
        ax.set_xscale("log")
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_title(group)
        ax.set_xlabel("τ" if group == "IPO" else "β")
        if k % axes.shape[1] == 0:  # one y label per row of panels
            ax.set_ylabel(spec.ylabel)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)


def _curves(spec: FigureSpec, fig: Any, axes: Any) -> None:
    for ax, panel in zip(axes.flat, spec.panels, strict=False):
        key = panel if panel == "loss" else f"probe/{panel}"
        for series in spec.series:
            steps, vals = mean_curve(list(series.files), key)
            ax.plot(steps, vals, marker=".", label=series.label)
        ax.set_title(panel.replace("_", " "), fontsize=9)
        ax.set_xlabel("step")


def _learning_series(spec: FigureSpec) -> list[dict[str, Any]]:
    out = []
    for item in spec.series:
        curves = []
        for f in item.files:
            with open(f, encoding="utf-8") as fh:
                curves.append(json.load(fh)["metrics"]["curves"])
        missing = [f for f, c in zip(item.files, curves, strict=True) if "eval_loss" not in c]
        if missing:
            raise ValueError(f"figure {spec.name}: no validation curve (curves.eval_loss) in {missing[:3]}")
        summary = family_convergence(list(item.files), item.budget)
        out.append({"label": item.label, "train": [c.get("loss") for c in curves if c.get("loss")],
                    "eval": [c["eval_loss"] for c in curves], "budget": summary["budget"],
                    "plateau": summary["plateau_step"]})  # fmt: skip
    return out


def make_figure(spec: FigureSpec, path: str) -> None:
    """Draw the figure ``spec`` (kind in FIGURE_KINDS) and write it to ``path`` (PNG, atomically)."""
    kind = spec.kind
    if kind not in FIGURE_KINDS:
        raise ValueError(f"figure {spec.name}: kind must be one of {FIGURE_KINDS}, got {kind!r}")
    if kind == "learning_curves":
        learning_curves(_learning_series(spec), path, spec.title or spec.name)
        return
    if kind == "sweep":
        n = len({row.group for row in spec.table.rows})
        ncols = min(3, max(n, 1))
        fig, axes = _figure(ncols, math.ceil(max(n, 1) / ncols))
        _sweep(spec, fig, axes)
        _shared_legend(fig, axes[0, 0], "length bias")
    elif kind == "curves":
        fig, axes = _figure(len(spec.panels), 1, width=3.6)
        _curves(spec, fig, axes)
        _shared_legend(fig, axes[0, 0])
    else:
        fig, axes = _figure()
        (_bias_lines if kind == "bias_lines" else _stacked_bars)(spec, axes[0, 0])
        _shared_legend(fig, axes[0, 0], "reward model" if kind == "stacked_bars" else None)
    title = spec.title or (spec.table.title if spec.table is not None else "") or spec.name
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def _seed_curves(curves: Any) -> list[Mapping[str, Sequence[float]]]:
    """Per-seed ``{"step", "value"}`` curves: a list of them, one curve, or None (no curves)."""
    if curves is None:
        return []
    return [curves] if isinstance(curves, Mapping) else list(curves)


def learning_curves(series: Sequence[Mapping[str, Any]], out: str, title: str) -> None:
    """Loss curves, one panel per series, written to ``out`` (PNG, atomically).

    A series is ``{"label", "train", "eval", "budget", "plateau"}``: ``train`` and ``eval`` are
    per-seed ``{"step": [...], "value": [...]}`` curves (a list; one curve or None also accepted),
    drawn per seed in one colour, the training loss thin and the validation loss thick;
    ``plateau`` (a step or None) is marked by a dashed vertical line, the ``budget`` by the end of
    the x axis; the panel title says whether the curve flattened before the budget.
    """
    from matplotlib.lines import Line2D

    if not series:
        raise ValueError(f"figure {out}: no series to draw")
    ncols = min(3, len(series))
    fig, axes = _figure(ncols, math.ceil(len(series) / ncols))
    for ax, item in zip(axes.flat, series, strict=False):
        train, evals = _seed_curves(item.get("train")), _seed_curves(item.get("eval"))
        for k in range(max(len(train), len(evals))):
            colour = f"C{k % 10}"
            if k < len(train):
                ax.plot(train[k]["step"], train[k]["value"], color=colour, lw=0.8, alpha=0.7)
            if k < len(evals):
                ax.plot(evals[k]["step"], evals[k]["value"], color=colour, lw=2.2, marker=".", ms=4)
        budget, plateau = item.get("budget"), item.get("plateau")
        if plateau is not None:
            ax.axvline(float(plateau), color="black", ls="--", lw=1.0)
        if budget is not None:
            ax.set_xlim(left=0, right=float(budget))
        if plateau is None:
            verdict = "no decrease"
        elif budget is not None and plateau >= budget:
            verdict = f"still decreasing at the budget ({budget} steps)"
        else:
            verdict = f"plateau at step {plateau}" + ("" if budget is None else f" of {budget}")
        ax.set_title(f"{item['label']}\n{verdict}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
    for ax in list(axes.flat)[len(series) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color="grey", lw=0.8, label="training loss"),
        Line2D([], [], color="grey", lw=2.2, marker=".", label="validation loss"),
        Line2D([], [], color="black", ls="--", lw=1.0, label="plateau step (1% rule)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, title="colour = seed")
    fig.suptitle(title, fontsize=10)
    _save(fig, out)
