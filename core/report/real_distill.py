"""Figure 2 (as a table) and claims d, e of a real-text config's distillation policies (docs/small-real.md).

Each metrics file is one seed: per length bias ``b``, the reward models (d-DPO's on ``D_b``, e-DPO's
ensemble) and every policy (method, beta, gamma) with its judged win rate (%) on ``val``, ``id``,
``shifted``, HHH accuracy (%), ``preferred_logratio`` and ``||theta||``. A method's setting at a
bias is the (beta, gamma) with the best seed-mean *validation* value. Effects are paired by seed,
with the 95% Student-t interval and the verdict of core.report.claims.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.report.real import fmt_interval, mean_interval, real_claim_row

__all__ = ["distill_claims", "distill_rm_table", "distill_table", "read_distill"]

LABELS = {"dpo": "DPO", "ipo": "IPO", "ddpo": "d-DPO", "pdpo": "p-DPO", "edpo": "e-DPO"}
BENCHES = {"id": "in-distribution", "shifted": "shifted sources"}
DEGENERATE_THETA = 1e-3


def read_distill(files: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(policies, reward_models)``: one row per (seed, bias, method, beta, gamma) with the uniform
    ``pi_ref``'s values as method ``reference``; one row per (seed, bias, reward model)."""
    policies, rms = [], []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            m = json.load(fh)
        seed = m["seed"]
        for bias, entry in m["biases"].items():
            b = float(bias)
            policies.append({"seed": seed, "bias": b, "method": "reference", "beta": 0.0, "gamma": 0.0,
                             **m["reference"], "theta_norm": 0.0, "preferred_logratio": 0.0})  # fmt: skip
            for key, res in entry["policies"].items():
                method, beta, gamma = key.split("|")
                policies.append({"seed": seed, "bias": b, "method": method, "beta": float(beta),
                                 "gamma": float(gamma), **res})  # fmt: skip
            members = [("d-DPO's (on D_b)", None, entry["rm"])]
            members += [(f"e-DPO's b'={k}", k, r) for k, r in entry["ensemble"].items()]
            for name, member, r in members:
                rms.append({"seed": seed, "bias": b, "model": name, "member": member,
                            "target_mean": r.get("target_mean", float("nan")), "accuracy": r["accuracy"],
                            "matched_accuracy": r["matched_accuracy"], "matched_longer": r["matched_longer"],
                            "longer": r["longer"], "degenerate": r["spread"]["degenerate"]})  # fmt: skip
    if not policies:
        raise ValueError(f"no distillation policies in the {len(files)} metrics file(s) given")
    return pd.DataFrame(policies), pd.DataFrame(rms)


def chosen_settings(frame: pd.DataFrame) -> dict[tuple[float, str], pd.DataFrame]:
    """``{(bias, method): its seeds at the (beta, gamma) with the best seed-mean validation value}``."""
    out = {}
    for (bias, method), sel in frame[frame.method != "reference"].groupby(["bias", "method"], sort=False):
        beta, gamma = sel.groupby(["beta", "gamma"])["val"].mean().idxmax()
        out[(bias, method)] = sel[(sel.beta == beta) & (sel.gamma == gamma)].set_index("seed")
    for bias, sel in frame[frame.method == "reference"].groupby("bias"):
        out[(bias, "reference")] = sel.set_index("seed")
    return out


def _setting(method: str, sel: pd.DataFrame) -> str:
    beta, gamma = float(sel.beta.iloc[0]), float(sel.gamma.iloc[0])
    label = f"{LABELS[method]} ({'τ' if method == 'ipo' else 'β'}={beta:g}"
    return label + (f", γ={gamma:g})" if gamma > 0 else ")")


def _paired(treated: pd.Series, baseline: pd.Series) -> tuple[float, float, float, int]:
    seeds = sorted(set(treated.index) & set(baseline.index))
    return mean_interval([float(treated[s] - baseline[s]) for s in seeds])


def distill_table(frame: pd.DataFrame, rms: pd.DataFrame) -> pd.DataFrame:
    """Per bias: each method at its validation-chosen setting (judged win rate over ``pi_ref``, in and
    out of distribution; HHH; the preferred log-ratio; ||theta||), then the reward models' accuracy."""
    chosen = chosen_settings(frame)
    rows = []
    for bias in sorted(set(frame.bias)):
        ref = chosen[(bias, "reference")]
        for method in LABELS:
            sel = chosen.get((bias, method))
            if sel is None:
                continue
            row = {"bias b": f"{bias:g}", "model": _setting(method, sel)}
            for bench, label in BENCHES.items():
                row[f"{label}: win rate − π_ref"] = fmt_interval(*_paired(sel[bench], ref[bench])[:3])
            row["HHH accuracy"] = fmt_interval(*mean_interval(sel["hhh"].values)[:3])
            row["preferred log-ratio"] = fmt_interval(*mean_interval(sel["preferred_logratio"].values)[:3])
            row["‖θ‖"] = f"{sel.theta_norm.mean():.2f}"
            rows.append(row)
        row = {"bias b": f"{bias:g}", "model": "π_ref (uniform), win rate"}
        for bench, label in BENCHES.items():
            row[f"{label}: win rate − π_ref"] = f"({fmt_interval(*mean_interval(ref[bench].values)[:3])})"
        rows.append(row)
        if "best_id" in ref:
            rows.append({"bias b": f"{bias:g}", "model": "ceiling: the judge's best candidate",
                         **{f"{label}: win rate − π_ref": fmt_interval(*_paired(ref[f"best_{b}"], ref[b])[:3])
                            for b, label in BENCHES.items()}})  # fmt: skip
    return pd.DataFrame(rows).fillna("")


def distill_rm_table(rms: pd.DataFrame, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The distilled reward models per bias: in-distribution accuracy (%), on length-matched pairs and
    the length rule's there, mean [95% CI] over seeds, the degenerate seeds, the mean target
    ``r(y+) - r(y-)`` on ``D_b``'s pairs and, for e-DPO's members, the share of steps its ``min_k``
    took each (at e-DPO's validation-chosen setting, mean over seeds)."""
    chosen = chosen_settings(frame) if frame is not None else {}
    rows = []
    for (bias, name), sel in rms.groupby(["bias", "model"], sort=False):
        deg = ",".join(str(s) for s in sorted(sel.seed[sel.degenerate])) or "none"
        edpo, member = chosen.get((bias, "edpo")), sel.member.iloc[0]
        share = "" if edpo is None or pd.isna(member) or "member_share" not in edpo else (
            f"{100 * float(np.mean([m[member] for m in edpo.member_share])):.0f}%")  # fmt: skip
        rows.append({"bias b": f"{bias:g}", "reward model": name, "mean target on D_b": f"{sel.target_mean.mean():.2f}",
                     "e-DPO's min took it": share,
                     "in-dist. accuracy": fmt_interval(*mean_interval(100 * sel.accuracy.values)[:3]),
                     "length-matched": fmt_interval(*mean_interval(100 * sel.matched_accuracy.values)[:3]),
                     "length rule there": fmt_interval(*mean_interval(100 * sel.matched_longer.values)[:3]),
                     "degenerate seeds": deg})  # fmt: skip
    return pd.DataFrame(rows)


def distill_claims(
    frame: pd.DataFrame, rms: pd.DataFrame, probe: Mapping[str, float], gates: Mapping[str, Any]
) -> tuple[list[dict], dict[str, Any]]:
    """Claim d (d-/e-DPO minus DPO/IPO at every bias at least 0.25 from 0.5, in and out of
    distribution), claim e (preferred log-ratio of p-DPO and d-DPO minus DPO's at ``probe``'s bias and
    beta) and the gate ``distill_learned`` (DPO on ``D_0.5`` over ``pi_ref`` in distribution)."""
    chosen = chosen_settings(frame)
    out_gates: dict[str, Any] = {}
    if (0.5, "dpo") in chosen:
        mean, low, high, n = _paired(chosen[(0.5, "dpo")]["id"], chosen[(0.5, "reference")]["id"])
        out_gates["distill_learned"] = {"effect": mean, "ci_low": low, "ci_high": high, "n_seeds": n,
                                        "passed": bool(low > 0)}  # fmt: skip
    failed = [f"gate {g} failed" for g, v in {**gates, **out_gates}.items()
              if g in ("rm_beyond_length", "distill_learned") and not v["passed"]]  # fmt: skip

    def flags(bias: float, *sels: tuple[str, pd.DataFrame], rm: bool) -> str:
        parts = []
        if rm:
            deg = rms[(rms.bias == bias) & rms.degenerate]
            if not deg.empty:
                parts.append(f"degenerate RM: seeds {','.join(map(str, sorted(set(deg.seed))))}")
        for name, sel in sels:
            flat = sel.index[sel.theta_norm < DEGENERATE_THETA]
            if len(flat):
                parts.append(f"degenerate {name}: seeds {','.join(map(str, flat))}")
        return "; ".join(parts + (failed if rm else [f for f in failed if "distill" in f]))

    rows: list[dict] = []
    for bias in sorted(b for b in set(frame.bias) if abs(b - 0.5) >= 0.25 - 1e-9):
        for treated in ("ddpo", "edpo"):
            for baseline in ("dpo", "ipo"):
                t, b = chosen.get((bias, treated)), chosen.get((bias, baseline))
                if t is None or b is None:
                    continue
                for bench, label in BENCHES.items():
                    effect, flag = _paired(t[bench], b[bench]), flags(bias, (treated, t), (baseline, b), rm=True)
                    row = real_claim_row(f"d:{treated}-vs-{baseline}", f"{label}, b={bias:g}", _setting(baseline, b),
                               _setting(treated, t), effect, flag)  # fmt: skip
                    row.update(metric="judged win rate (%)", refs="figure2")
                    rows.append(row)
    bias, beta = float(probe["bias"]), float(probe["beta"])
    sel = frame[(frame.bias == bias) & (frame.beta == beta)]
    base = sel[sel.method == "dpo"].set_index("seed")
    for treated in ("pdpo", "ddpo"):
        t = sel[sel.method == treated]
        if t.empty or base.empty:
            continue
        gamma = t.groupby("gamma")["val"].mean().idxmax()
        t = t[t.gamma == gamma].set_index("seed")
        effect = _paired(t["preferred_logratio"], base["preferred_logratio"])
        row = real_claim_row(f"e:{treated}-vs-dpo", f"D_b pairs, b={bias:g}", _setting("dpo", base),
                             _setting(treated, t), effect,
                             flags(bias, (treated, t), ("dpo", base), rm=treated == "ddpo"))  # fmt: skip
        row.update(metric="log π(y+|x) − log π_ref(y+|x) (nats)", refs="figure2")
        rows.append(row)
    return rows, out_gates
