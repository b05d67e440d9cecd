"""The label-noise ablation (docs/claims.md, "Why a DR reward model loses here"): do the DR reward
models of the synthetic world collapse because TV-DRO up-weights the pairs whose Bradley-Terry
label disagrees with the oracle?

The same world, models, budgets and seeds with ``data.world.label_temperature: 0`` (the preferred
response is the oracle's argmax: no label noise), the reward-model TV grid of ``report.rm_variant``
only (:func:`noise_free`). Per label temperature, benchmark and TV rho (:func:`ablation_rows`): the
seeds whose DR model is degenerate (near-constant rewards) and the paired DR - BTL difference in
accuracy points, its mean over seeds with the 95% Student-t interval ``mean +- t_{n-1} sd/sqrt(n)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.data.synthetic import WorldConfig
from core.report.tables import paired_interval, read_metric, read_number

__all__ = ["ablation_markdown", "ablation_rows", "noise_free", "rm_files"]

#: the ablated world's label temperature (labels are the oracle's argmax)
NOISE_FREE = 0.0


def noise_free(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config's world without label noise, only its reward-model TV grid of ``report.rm_variant``,
    under its own name (``<name>-label-t0``) and without the warm-start server (it runs nested)."""
    out = copy.deepcopy(dict(cfg))
    out["name"] = f"{cfg['name']}-label-t0"
    out["data"]["world"]["label_temperature"] = NOISE_FREE
    variant = cfg["report"]["rm_variant"]
    out["dr"]["reward"]["grids"] = {variant: {"tv": list(cfg["dr"]["reward"]["grids"][variant]["tv"])}}
    out["report"]["ablation"] = False
    out["resources"]["warm_start"] = False
    return out


def rm_files(p: Any, bench: str) -> dict[float, list[str]]:
    """The metrics files of ``bench`` per TV rho (0: BTL) of ``report.rm_variant``, one per seed
    (``p``: the config's core.plan.Pipeline)."""
    variant = p.cfg["report"]["rm_variant"]
    return {rho: [p.paths.metrics(p.paths.rm(v, d, rho, s), bench) for s in p.seeds()]
            for v, d, rho in p.rm_grid(variant, "tv")}  # fmt: skip


def _score(path: Path, bench: str) -> tuple[float, bool]:
    """A reward model's accuracy in points (``id``: pairwise, else the overall score) and its degeneracy flag."""
    value = read_number(path, "metrics/accuracy" if bench == "id" else "metrics/scores/overall")
    return 100 * value, read_metric(path, "metrics/spread/degenerate") is True


def ablation_rows(workdir: Path, p: Any) -> list[dict[str, Any]]:
    """One row per benchmark and DR rho of the config behind ``p``: BTL and DR means, the paired
    DR - BTL difference (mean, 95% interval, seeds: core.report.tables.paired_interval) and the
    seeds whose DR model is degenerate."""
    temperature = float(p.cfg["data"]["world"].get("label_temperature", WorldConfig.label_temperature))
    rows = []
    for bench in p.dr_benchmarks():
        files = rm_files(p, bench)
        base = [_score(workdir / f, bench)[0] for f in files[0.0]]
        for rho, fs in files.items():
            if rho == 0.0:
                continue
            scored = [_score(workdir / f, bench) for f in fs]
            diff, low, high, n = paired_interval([v - b for (v, _), b in zip(scored, base, strict=True)])
            degenerate = [s for s, (_, d) in zip(p.seeds(), scored, strict=True) if d]
            rows.append({"label_temperature": temperature, "benchmark": bench, "rho": rho,
                         "btl": float(np.mean(base)), "dr": float(np.mean([v for v, _ in scored])),
                         "diff": diff, "ci_low": low, "ci_high": high, "n_seeds": n,
                         "degenerate_seeds": degenerate})  # fmt: skip
    return rows


def _degenerate_count(rows: Sequence[Mapping[str, Any]], temperature: float, rho_at_least: float) -> tuple[int, int]:
    """(degenerate, all) DR models at rho >= ``rho_at_least`` on the first benchmark (one model per seed)."""
    first = next((r["benchmark"] for r in rows), None)
    chosen = [r for r in rows if r["label_temperature"] == temperature and r["rho"] >= rho_at_least
              and r["benchmark"] == first]  # fmt: skip
    return sum(len(r["degenerate_seeds"]) for r in chosen), sum(r["n_seeds"] for r in chosen)


def _findings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the table shows, from its numbers: degenerate models at the larger rhos and DR - BTL at
    the smallest rho on the first benchmark, per label temperature, and whether removing the label
    noise removed the collapse (the mechanism's prediction)."""
    if not rows:
        return []
    first, rhos = rows[0]["benchmark"], sorted({r["rho"] for r in rows})
    cut, temperatures = rhos[len(rhos) // 2], sorted({r["label_temperature"] for r in rows}, reverse=True)
    counts = {t: _degenerate_count(rows, t, cut) for t in temperatures}
    said = "; ".join(f"label temperature {t:g}: {k} of {n}" for t, (k, n) in counts.items())
    small = {r["label_temperature"]: r for r in rows if r["benchmark"] == first and r["rho"] == rhos[0]}
    diffs = "; ".join(f"label temperature {t:g}: {r['diff']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
                      for t, r in small.items())  # fmt: skip
    out = [f"Degenerate DR reward models at TV ρ >= {cut:g} on `{first}` (one per seed and ρ): {said}.",
           f"DR - BTL at ρ = {rhos[0]:g} on `{first}` (accuracy points, 95% interval): {diffs}."]  # fmt: skip
    if len(counts) == 2:
        (noisy, _), (clean, _) = counts[temperatures[0]], counts[temperatures[-1]]
        if noisy == 0:
            out.append("With label noise no DR model is degenerate there: no collapse for label noise to explain.")
        else:
            out.append("Without label noise the collapse "
                       + ("shrinks, as the label-noise mechanism predicts." if clean < noisy else
                          "does not shrink: label noise does not explain it."))  # fmt: skip
    return out


def ablation_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The ablation's table and what it shows (:func:`_findings`: computed, no verdict typed by hand)."""
    lines = ["| label temperature | benchmark | TV ρ | BTL | DR | DR - BTL [95% CI] | seeds | degenerate DR seeds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        seeds = ",".join(map(str, r["degenerate_seeds"])) or "none"
        ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        lines.append(f"| {r['label_temperature']:g} | {r['benchmark']} | {r['rho']:g} | {r['btl']:.1f} | "
                     f"{r['dr']:.1f} | {r['diff']:+.2f}{ci} | {r['n_seeds']} | {seeds} |")  # fmt: skip
    title = "#### Why DR reward models collapse: the label-noise ablation (docs/claims.md)"
    return "\n".join([title, "", " ".join(_findings(rows)), "", *lines, ""])
