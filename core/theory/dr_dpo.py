"""Algorithm 3 of the DR paper (DR-DPO) with log-linear policies (Assumption 2), Theorem 3.

``pi_theta(y|x) ∝ exp(theta . psi(x, y))`` over a finite response set, ``||psi|| <= 1`` and
``||theta|| <= B``; ``pi_ref = pi_{theta_ref}``.  For such policies the per-example DPO loss (eq. 6)
is a logistic loss that is linear in ``theta`` (the partition functions cancel):

    l_i(theta) = -log sigma(beta theta . (psi(x,y+) - psi(x,y-)) + beta log pi_ref(y+|x)/pi_ref(y-|x)),

so the robust DPO loss (eq. 7) is convex, its exact minimiser comes from cvxpy, and Algorithm 3
(projected minibatch SGD with worst-case weights, ``eta = 2/sqrt(T)``, averaged iterate) has
suboptimality ``<= 6 beta (2B + J)(1 + 2 rho) sqrt((4 + log n)/n) + 2/sqrt(T)`` (Theorem 3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.theory.common import (
    atomic_savefig,
    check_positive,
    make_rng,
    new_figure,
    resolve_config,
    slope_or_nan,
)
from core.theory.robust_logistic import robust_loss, robust_sgd, solve_robust_logistic_cvxpy

__all__ = ["DEFAULT_ALG3_DPO", "make_dpo_data", "plot_alg3_dpo", "run_alg3_dpo"]

DEFAULT_ALG3_DPO: dict[str, Any] = {
    "n_prompts": 30,  # |X|
    "n_responses": 6,  # |Y| per prompt
    "dim": 8,  # d_P, policy feature dimension
    "n_pairs": 300,  # N preference triples (x, y+, y-)
    "beta": 1.0,  # DPO temperature
    "radius": 4.0,  # B, the radius of Theta = {||theta|| <= B}
    "ref_norm": 1.0,  # ||theta_ref||
    "reward_scale": 6.0,  # r*(x, y) = reward_scale * (u . psi(x, y)) + reward_noise * N(0, 1)
    "reward_noise": 0.5,  # part of the annotators' reward outside the policy class
    "divergence": "tv",
    "rho": 0.05,
    "batch_size": 128,  # n
    "steps_grid": [32, 64, 128, 256, 512, 1024, 2048],  # T values
    "replicates": 3,
    "step_scale": 1.0,  # eta = step_scale * 2 / sqrt(T)  (Algorithm 3, line 1)
}


def make_dpo_data(cfg: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Features, reference policy and Bradley-Terry preference triples; returns ``z``, ``b`` and ``J``.

    ``psi(x, y)`` uniform in the unit ball; ``theta_ref`` of norm ``ref_norm``; the annotators'
    reward is ``r*(x, y) = reward_scale u . psi(x, y) + reward_noise eps(x, y)`` (``u`` a random unit
    vector, ``eps`` i.i.d. standard normal, i.e. partly outside the policy class); pairs draw ``x``
    uniformly and two distinct responses from ``pi_ref(.|x)``.
    """
    nx, ny, dim = int(cfg["n_prompts"]), int(cfg["n_responses"]), int(cfg["dim"])
    if ny < 2:
        raise ValueError(f"theory experiment 'alg3_dpo': config key 'n_responses' must be >= 2, got {ny}")
    raw = rng.standard_normal((nx, ny, dim))
    radii = rng.random((nx, ny, 1)) ** (1.0 / dim)
    psi = raw / np.linalg.norm(raw, axis=2, keepdims=True) * radii
    theta_ref = rng.standard_normal(dim)
    theta_ref *= float(cfg["ref_norm"]) / np.linalg.norm(theta_ref)
    logits = psi @ theta_ref
    log_ref = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    reward = float(cfg["reward_scale"]) * (psi @ u) + float(cfg["reward_noise"]) * rng.standard_normal((nx, ny))
    n = int(cfg["n_pairs"])
    x = rng.integers(0, nx, size=n)
    y1 = np.empty(n, dtype=int)
    y2 = np.empty(n, dtype=int)
    for i, xi in enumerate(x):
        y1[i], y2[i] = rng.choice(ny, size=2, replace=False, p=np.exp(log_ref[xi]))
    first_wins = rng.random(n) < 1.0 / (1.0 + np.exp(-(reward[x, y1] - reward[x, y2])))
    yw = np.where(first_wins, y1, y2)
    yl = np.where(first_wins, y2, y1)
    beta = float(cfg["beta"])
    z = beta * (psi[x, yw] - psi[x, yl])
    b = beta * (log_ref[x, yw] - log_ref[x, yl])
    return {"z": z, "b": b, "J": float(np.max(np.abs(log_ref[x, yw] - log_ref[x, yl])))}


def run_alg3_dpo(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Theorem 3: robust DPO loss suboptimality of Algorithm 3's averaged iterate against ``T``.

    Config keys (``DEFAULT_ALG3_DPO``): ``n_prompts, n_responses, dim, n_pairs, beta, radius (B),
    ref_norm, reward_scale, reward_noise`` (the instance); ``divergence`` (tv/chi2), ``rho``; ``batch_size`` n;
    ``steps_grid``; ``replicates``; ``step_scale`` (eta = scale * 2/sqrt T).  Table: one row per
    (T, replicate) with the robust loss and suboptimality; summary: the log-log ``slope``, the
    first/last mean suboptimality and Theorem 3's bias bound.
    """
    name = "alg3_dpo"
    cfg = resolve_config(name, DEFAULT_ALG3_DPO, config)
    for key in ("n_prompts", "dim", "n_pairs", "beta", "radius", "batch_size", "replicates"):
        check_positive(name, key, float(cfg[key]))
    check_positive(name, "rho", float(cfg["rho"]), allow_zero=True)
    if cfg["divergence"] not in ("tv", "chi2", "none"):
        raise ValueError(
            f"theory experiment {name!r}: config key 'divergence' must be tv, chi2 or none, got {cfg['divergence']!r}"
        )
    steps_grid = [int(t) for t in cfg["steps_grid"]]
    if len(steps_grid) < 2 or min(steps_grid) < 1:
        raise ValueError(
            f"theory experiment {name!r}: config key 'steps_grid' needs >= 2 positive T values, got "
            f"{cfg['steps_grid']!r}"
        )
    rng = make_rng(seed)
    data = make_dpo_data(cfg, rng)
    z, b = data["z"], data["b"]
    div, rho, radius = cfg["divergence"], float(cfg["rho"]), float(cfg["radius"])
    theta_opt, opt_value = solve_robust_logistic_cvxpy(z, b, div, rho, radius)
    rows = []
    for steps in steps_grid:
        eta = float(cfg["step_scale"]) * 2.0 / math.sqrt(steps)
        for rep in range(int(cfg["replicates"])):
            theta_bar, _ = robust_sgd(z, b, div, rho, radius, steps, int(cfg["batch_size"]), eta, rng)
            value = robust_loss(theta_bar, z, b, div, rho)
            rows.append({"steps": steps, "replicate": rep, "robust_loss": value, "suboptimality": value - opt_value})
    table = pd.DataFrame(rows)
    means = table.groupby("steps")["suboptimality"].mean()
    slope, intercept = slope_or_nan(means.index.to_numpy(dtype=float), means.to_numpy())
    n, beta = int(cfg["batch_size"]), float(cfg["beta"])
    summary = {
        "slope": slope,
        "intercept": intercept,
        "robust_optimum": opt_value,
        "theta_opt_norm": float(np.linalg.norm(theta_opt)),
        "J": data["J"],
        "theorem3_bias_bound": 6 * beta * (2 * radius + data["J"]) * (1 + 2 * rho) * math.sqrt((4 + math.log(n)) / n),
        "first_mean_suboptimality": float(means.iloc[0]),
        "last_mean_suboptimality": float(means.iloc[-1]),
    }
    return {"name": name, "config": cfg, "seed": seed, "table": table, "summary": summary}


def plot_alg3_dpo(result: dict[str, Any], path: str) -> None:
    """Log-log plot of the robust DPO loss suboptimality vs T with the fitted slope."""
    table, s, cfg = result["table"], result["summary"], result["config"]
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.scatter(table["steps"], table["suboptimality"].clip(lower=1e-12), s=10, alpha=0.4, label="replicates")
    means = table.groupby("steps")["suboptimality"].mean()
    t = means.index.to_numpy(dtype=float)
    ax.plot(t, means.to_numpy(), "o-", label="mean")
    ax.plot(t, np.exp(s["intercept"]) * t ** s["slope"], "--", label=f"fit: slope {s['slope']:.2f}")
    ax.plot(t, means.iloc[0] * (t / t[0]) ** -0.5, ":", color="gray", label="slope -1/2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("T (iterations)")
    ax.set_ylabel("robust DPO loss suboptimality of theta_bar")
    ax.set_title(f"Alg. 3 DR-DPO ({cfg['divergence']}, rho={cfg['rho']}, beta={cfg['beta']})")
    ax.legend(fontsize=7)
    atomic_savefig(fig, path)
