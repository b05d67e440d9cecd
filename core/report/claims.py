"""Every claim of both papers as data, and its measured verdict.

A claim (core.report.paper_claims: declared once, with what it compares) names what the paper says
and its number, the metric, the baseline and treated rows, the benchmark and the direction the
paper reports. The workflow's plan (core.plan.claim_plan) attaches to each claim the metrics files of
this config; :func:`claims_table` computes

* ``effect`` — oriented so that positive is the paper's direction:
  - ``paired``: the mean over seeds of ``direction * (treated_s - baseline_s)``, paired by seed,
    with the 95% Student-t interval of that mean (none with one seed);
  - ``equivalence`` (a convergence rate): ``margin - |fitted - claimed|`` of the log-log slope,
    with a percentile-bootstrap interval over the experiment's replicates;
  - ``exact`` (a deterministic computation): ``direction * (value - reference)``, a point;
* ``verdict`` from the interval, never typed by hand: ``reproduced`` (interval above 0),
  ``opposite`` (below 0), ``inconclusive`` (contains 0, or no interval), ``n/a`` (not in this
  config);
* ``flags`` — degenerate models (near-constant scores), summarised per model (:func:`degenerate_summary`:
  ``degenerate: ρ=0.6 seeds 0,1,3,4; ρ=1 all``), and failed sanity gates the claim rests on, by name
  (their text under the table); the degenerate models' files in ``flag_files`` (the CSV only). A flag
  never changes the verdict: a collapse is a finding, shown beside it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.report.convergence import family_convergence
from core.report.paper_claims import CLAIMS, GATES, Claim
from core.report.spec_types import (
    ClaimCell,
    ExactCell,
    FlattensBefore,
    GateSpec,
    PairedCell,
    SeedFiles,
    Selection,
    SlopeCell,
)
from core.report.tables import (
    paired_interval,
    read_metric,
    read_number,
    reported_files,
    select_candidate,
)

__all__ = ["VERDICTS", "claim_row", "claims_table", "degenerate_summary", "evaluate_gates", "verdict", "write_claims"]

VERDICTS = ("reproduced", "opposite", "inconclusive", "n/a")
COLUMNS = ["claim", "paper", "says", "paper_number", "metric", "benchmark", "baseline", "treatment", "effect",
           "ci_low", "ci_high", "n_seeds", "verdict", "flags", "refs", "flag_files"]  # fmt: skip
#: a seed's metrics file: ``<model>/seed<N>/<benchmark>.json`` (or ``<model>_s<N>_...``)
SEED_FILE = re.compile(r"^(?P<model>.*?)[/_]s(?:eed)?(?P<seed>[0-9]+)(?=[/_.])")
#: grid coordinates in a model's path, as the tables write them
COORDINATE = re.compile(r"^(?P<name>rho|beta|tau|bias)(?P<value>-?[0-9][0-9.e-]*)$")
SYMBOL = {"rho": "ρ", "beta": "β", "tau": "τ", "bias": "bias"}


def verdict(ci_low: float, ci_high: float, available: bool = True) -> str:
    """``reproduced`` / ``opposite`` / ``inconclusive`` from the 95% interval of the effect."""
    if not available:
        return "n/a"
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "inconclusive"
    if ci_low > 0:
        return "reproduced"
    if ci_high < 0:
        return "opposite"
    return "inconclusive"


def _side_values(side: SeedFiles | Selection, key: str, scale: float) -> tuple[list[float], str | None]:
    """Per-seed values of one side (plain files or a selection), and the selected label."""
    chosen = select_candidate(side) if isinstance(side, Selection) else side
    return [scale * read_number(f, key) for f in chosen.files], getattr(chosen, "label", None)


def _paired(cell: PairedCell, direction: int) -> dict[str, Any]:
    key, scale = cell.key, float(cell.scale)
    base, base_label = _side_values(cell.baseline, key, scale)
    treat, treat_label = _side_values(cell.treatment, key, scale)
    if len(base) != len(treat):
        raise ValueError(f"claim {cell.id}: {len(base)} baseline seeds vs {len(treat)} treated")
    effect, lo, hi, n = paired_interval([direction * (t - b) for b, t in zip(base, treat, strict=True)])
    return {"effect": effect, "ci_low": lo, "ci_high": hi, "n_seeds": n, "selected": (base_label, treat_label)}


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _equivalence(cell: SlopeCell) -> dict[str, Any]:
    """``margin - |slope - claimed|`` of log mean-suboptimality vs log T; bootstrap over replicates."""
    frame = pd.read_csv(cell.table)
    wide = frame.pivot_table(index=cell.x, columns=cell.replicate, values=cell.y)
    steps, values = wide.index.to_numpy(dtype=float), wide.to_numpy(dtype=float)
    claimed, margin = float(cell.claimed), float(cell.margin)

    def effect_of(cols: np.ndarray) -> float:
        return margin - abs(_slope(steps, values[:, cols].mean(axis=1)) - claimed)

    reps = values.shape[1]
    rng = np.random.default_rng(int(cell.seed))
    boot = [effect_of(rng.integers(0, reps, reps)) for _ in range(int(cell.n_boot))]
    lo, hi = np.percentile(boot, [2.5, 97.5]) if reps > 1 else (math.nan, math.nan)
    return {"effect": effect_of(np.arange(reps)), "ci_low": float(lo), "ci_high": float(hi), "n_seeds": reps}


def _exact(cell: ExactCell, direction: int) -> dict[str, Any]:
    value = read_number(cell.file, cell.key)
    ref = read_number(cell.file, cell.reference_key) if cell.reference_key is not None else float(cell.reference)
    effect = direction * (value - ref)
    return {"effect": effect, "ci_low": effect, "ci_high": effect, "n_seeds": 1}


def _degenerate(files: Sequence[tuple[str, str]]) -> list[str]:
    """Files whose ``metrics/.../spread/degenerate`` flag is set (near-constant scores)."""
    out = []
    for f, key in files:
        try:
            if read_metric(f, key) is True:
                out.append(f)
        except ValueError:
            continue
    return out


def _model_seed(path: str) -> tuple[tuple[str, ...], str]:
    """A seed's file as (its model: the path parts before the seed, then the benchmark after it;
    ``<model>/seed<N>/<bench>.json`` or ``<model>_s<N>_<bench>.json``, its seed); a file without a
    seed is a model of its own, seed ``""``."""
    m = SEED_FILE.match(path)
    if not m:
        return tuple(path.split("/")), ""
    return (*m["model"].split("/"), os.path.splitext(path[m.end() :].lstrip("/_"))[0]), m["seed"]


def _coordinate(part: str) -> str:
    m = COORDINATE.match(part)
    return f"{SYMBOL[m['name']]}={m['value']}" if m else part


def _part_order(part: str) -> tuple[str, float, str]:
    """Sort key of a path part: grid coordinates by their number (``rho0.6`` before ``rho1``)."""
    m = COORDINATE.match(part)
    try:
        return (m["name"], float(m["value"]), part) if m else (part, 0.0, part)
    except ValueError:  # not a number after all (``rho1-2``)
        return (part, 0.0, part)


def _telling_parts(models: Sequence[tuple[str, ...]]) -> list[int]:
    """The fewest positions (greedily) whose parts still tell every model apart: of the positions
    that differ, plain names (``tv``, ``vA``) are dropped before grid coordinates (``rho0.6``)."""
    varying = [i for i in range(len(models[0])) if len({m[i] for m in models}) > 1]
    if not varying:
        return [len(models[0]) - 2]  # one model: its last path part before the seed

    def distinct(kept: list[int]) -> bool:
        return len({tuple(m[i] for i in kept) for m in models}) == len(models)

    kept = list(varying)
    for i in sorted(varying, key=lambda i: (any(COORDINATE.match(m[i]) for m in models), -i)):
        if distinct([k for k in kept if k != i]):
            kept.remove(i)
    return kept


def _seeds_shown(flagged: set[str], checked: set[str]) -> str:
    """``all`` (every checked seed of the model flagged), ``seed 3`` or ``seeds 0,1,3,4``."""
    if checked <= flagged:
        return "all"
    seeds = sorted(flagged, key=lambda s: (len(s), s))
    return ("seed " if len(seeds) == 1 else "seeds ") + ",".join(seeds)


def degenerate_summary(flagged: Sequence[str], checked: Sequence[str]) -> str:
    """``degenerate: ρ=0.6 seeds 0,1,3,4; ρ=1 all``: the flagged files grouped by model (the path
    before its seed, and its benchmark), each model named by the fewest of those parts that tell the
    checked models apart (:func:`_telling_parts`), with its flagged seeds (``all`` when every
    checked seed of that model is flagged)."""
    if not flagged:
        return ""
    seeds: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}  # model: (checked seeds, flagged seeds)
    bad_files = set(flagged)
    for f in [*checked, *flagged]:
        model, seed = _model_seed(f)
        seeds.setdefault(model, (set(), set()))[f in bad_files].add(seed)
    depth = max(len(m) for m in seeds)  # align the benchmark (last) of paths of different depth
    padded = {m: m[:-1] + ("",) * (depth - len(m)) + m[-1:] for m in seeds}
    kept = _telling_parts(sorted(padded.values()))
    items = []
    for model in sorted(seeds, key=lambda m: [_part_order(p) for p in padded[m]]):
        every, bad = seeds[model][0] | seeds[model][1], seeds[model][1]
        if bad:
            name = " ".join(_coordinate(padded[model][i]) for i in kept if padded[model][i])
            items.append(" ".join(x for x in (name, "" if bad == {""} else _seeds_shown(bad, every)) if x))
    return "degenerate: " + "; ".join(items)


def _measure(cell: ClaimCell, direction: int) -> dict[str, Any]:
    """Effect, interval and seed count of one cell (the formula of its type, above)."""
    if isinstance(cell, PairedCell):
        return _paired(cell, direction)
    if isinstance(cell, SlopeCell):
        return _equivalence(cell)
    if isinstance(cell, ExactCell):
        return _exact(cell, direction)
    raise TypeError(f"no measurement for a claim cell of type {type(cell).__name__}")


def claim_row(claim: Claim, cell: ClaimCell | None, gates: Mapping[str, bool]) -> dict[str, Any]:
    """One row of the claims table: the claim, its measured effect, interval, verdict and flags."""
    row = {"claim": cell.id if cell else claim.id, "paper": claim.paper, "says": claim.says,
           "paper_number": claim.paper_number, "metric": claim.metric,
           "benchmark": (cell.benchmark if cell else None) or claim.benchmark, "baseline": claim.baseline,
           "treatment": claim.treatment, "refs": ", ".join(claim.refs)}  # fmt: skip
    if cell is None:
        return {**row, "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_seeds": 0,
                "verdict": "n/a", "flags": "", "flag_files": ""}  # fmt: skip
    res = _measure(cell, claim.direction)
    if isinstance(cell, PairedCell):
        base_sel, treat_sel = res.pop("selected")
        row["baseline"] = (cell.baseline_label or row["baseline"]) + (f" [{base_sel}]" if base_sel else "")
        row["treatment"] = (cell.treatment_label or row["treatment"]) + (f" [{treat_sel}]" if treat_sel else "")
    degenerate = _degenerate(cell.degenerate) if isinstance(cell, PairedCell) else []
    checked = [f for f, _ in cell.degenerate] if isinstance(cell, PairedCell) else []
    flags = [degenerate_summary(degenerate, checked)] if degenerate else []
    flags += [f"failed gate {g}" for g in claim.gates if not gates.get(g, True)]  # its text: under the table
    return {**row, **res, "verdict": verdict(res["ci_low"], res["ci_high"]), "flags": "; ".join(flags),
            "flag_files": "; ".join(degenerate)}  # fmt: skip


def evaluate_gates(specs: Mapping[str, GateSpec]) -> dict[str, bool]:
    """Each :class:`MeanAbove` gate passes when its value's seed mean exceeds every ``above``
    reference (else its ``threshold``); a :class:`FlattensBefore` gate when the seed-mean
    validation loss of its files flattened before its budget (core.report.convergence)."""
    out = {}
    for name, spec in specs.items():
        if isinstance(spec, FlattensBefore):
            out[name] = bool(family_convergence(list(spec.files), spec.budget)["converged"])
            continue
        value = float(np.mean([read_number(f, spec.key) for f in reported_files(spec.value)]))
        refs = [read_number(f, spec.key) for f in spec.above]
        floor = -math.inf if spec.threshold is None else spec.threshold
        out[name] = bool(value > max(refs, default=floor))
    return out


def claims_table(cells: Mapping[str, Sequence[ClaimCell]], gate_specs: Mapping[str, GateSpec]) -> pd.DataFrame:
    """The claims table: one row per (claim, cell) of this config, ``n/a`` for a claim without cells."""
    gates = evaluate_gates(gate_specs)
    rows = []
    for claim in CLAIMS:
        claim_cells = cells.get(claim.id) or [None]
        rows += [claim_row(claim, cell, gates) for cell in claim_cells]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["gates"] = gates
    return frame


def claims_markdown(frame: pd.DataFrame, gates: Mapping[str, bool]) -> str:
    """The report's first section: one line per claim with its verdict, effect and interval."""
    lines = ["| claim | paper says (its number; tables) | benchmark | baseline | treatment | effect [95% CI] "
             "| seeds | verdict | flags |", "|" + " --- |" * 9]  # fmt: skip
    for r in frame.to_dict("records"):
        ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"
        effect = "" if math.isnan(r["effect"]) else f"{r['effect']:.3g}{ci}"
        refs = ", ".join(f"[{x}](tables/{x}.md)" for x in str(r["refs"]).split(", ") if x)
        lines.append(f"| {r['claim']} | {r['says']} ({r['paper_number']}; {refs}) | {r['benchmark']} | "
                     f"{r['baseline']} | {r['treatment']} | {effect} | {r['n_seeds']} | **{r['verdict']}** | "
                     f"{r['flags']} |")  # fmt: skip
    gate_lines = [f"- gate `{g}` ({GATES[g].text}): {'passed' if ok else '**failed**'}" for g, ok in gates.items()]
    counts = frame["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    return "\n".join([f"Verdicts: {summary}.", "", *lines, "", "Sanity gates:", *gate_lines, ""])


def write_claims(
    cells: Mapping[str, Sequence[ClaimCell]], gate_specs: Mapping[str, GateSpec], csv_path: str, md_path: str
) -> pd.DataFrame:
    """``claims.csv`` and ``claims.md`` (written atomically)."""
    from core.atomic import atomic_write_text

    frame = claims_table(cells, gate_specs)
    atomic_write_text(csv_path, frame.to_csv(index=False))
    body = claims_markdown(frame, frame.attrs["gates"])
    atomic_write_text(md_path, "### Claims of both papers, as measured on this config\n\n" + body)
    return frame
