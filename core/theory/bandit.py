"""Transitive closure in a multi-armed bandit: p-DPO vs IPO (distillation paper §7.2, Prop. 7, Fig. B.2).

Arms ``y_1..y_K`` with ``pi_ref`` uniform (indifferent to every pair); the chain data
``D = {(y_i > y_{i+1})}`` and its transitive closure ``D_bar = {(y_i > y_j) : i < j}``.  With
``psi_i = log pi(y_i) - log pi_ref(y_i)`` (defined up to the log-partition constant):

* IPO (Azar et al.; the paper's form): ``sum_{(w,l)} (psi_w - psi_l - 1/tau)^2`` — a least-squares
  problem (a QP), solved exactly by a linear solve.  Prop. 7: the spread
  ``max psi - min psi`` is ``(K - 1)/tau`` on ``D`` and ``2 (K - 1)/(K tau)`` on ``D_bar``, i.e. the
  closure shrinks it by the factor ``K/2``.
* p-DPO (eq. 13 with the finite-sample forward KL of §7.1):
  ``sum_{(w,l)} [-log sigma(beta (psi_w - psi_l)) + gamma (-log pi(w) - log pi(l))]`` with
  ``gamma = beta/alpha``; solved over ``{pi(y_i)}`` by projected gradient descent (on the centred
  logits, see :func:`pdpo_bandit_pgd`).
  Its per-pair optimum (Prop. 5) has the log-ratio ``log(alpha - 1)/beta``, the "effective
  ``1/tau``" on the x-axis of Fig. B.2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.theory.common import atomic_savefig, check_positive, new_figure, resolve_config

__all__ = [
    "DEFAULT_BANDIT",
    "chain_pairs",
    "ipo_bandit_qp",
    "pdpo_bandit_cvxpy",
    "pdpo_bandit_objective",
    "pdpo_bandit_pgd",
    "plot_bandit_closure",
    "prop7_spreads",
    "run_bandit_closure",
    "transitive_closure",
]

DEFAULT_BANDIT: dict[str, Any] = {
    "n_arms": 3,  # K
    "betas": [1.0, 3.0, 10.0, 30.0],
    "alphas": [5.0, 10.0, 20.0, 50.0, 100.0, 1000.0],
    "ipo_tau_inv": None,  # IPO's 1/tau grid; None = the p-DPO effective values log(alpha - 1)/beta
    "kl_estimator": "ref",  # "ref": exact KL(pi_ref || pi) (eq. 13); "data": -log pi over the pairs' completions (§7.1)
    "pgd_steps": 20000,  # max projected-gradient iterations
    "pgd_tol": 1e-10,  # stop when the projected gradient's max-norm falls below this
}


def chain_pairs(n_arms: int) -> list[tuple[int, int]]:
    """``D = {(i, i + 1)}``: arm ``i`` preferred to arm ``i + 1`` (0-based)."""
    if n_arms < 2:
        raise ValueError(f"n_arms must be >= 2, got {n_arms}")
    return [(i, i + 1) for i in range(n_arms - 1)]


def transitive_closure(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """All ``(w, l)`` implied by transitivity of the preferences in ``pairs`` (sorted; raises on cycles)."""
    nodes = sorted({a for p in pairs for a in p})
    succ: dict[int, set[int]] = {v: set() for v in nodes}
    for w, lo in pairs:
        succ[w].add(lo)
    changed = True
    while changed:
        changed = False
        for v in nodes:
            new = set().union(*(succ[u] for u in succ[v])) - succ[v] if succ[v] else set()
            if new:
                succ[v] |= new
                changed = True
    if any(v in succ[v] for v in nodes):
        raise ValueError("preferences contain a cycle; the transitive closure is not an order")
    return sorted((w, lo) for w in nodes for lo in succ[w])


def _incidence(pairs: list[tuple[int, int]], n_arms: int) -> np.ndarray:
    a = np.zeros((len(pairs), n_arms))
    for row, (w, lo) in enumerate(pairs):
        a[row, w], a[row, lo] = 1.0, -1.0
    return a


def ipo_bandit_qp(pairs: list[tuple[int, int]], n_arms: int, tau_inv: float) -> np.ndarray:
    """Exact IPO solution: ``argmin_psi sum (psi_w - psi_l - 1/tau)^2``; returns ``pi = softmax(psi)``.

    The loss depends on differences only; the minimum-norm least-squares solution (a linear
    solve via the pseudo-inverse of the incidence matrix) fixes the constant, and the normalised
    policy does not depend on it.
    """
    a = _incidence(pairs, n_arms)
    psi = np.linalg.lstsq(a, np.full(len(pairs), float(tau_inv)), rcond=None)[0]
    return _softmax(psi)


def prop7_spreads(n_arms: int, tau_inv: float) -> tuple[float, float]:
    """Prop. 7: IPO spreads ``((K-1)/tau, 2 (K-1)/(K tau))`` on the chain and on its closure."""
    return (n_arms - 1) * tau_inv, 2.0 * (n_arms - 1) * tau_inv / n_arms


def _softmax(psi: np.ndarray) -> np.ndarray:
    e = np.exp(psi - psi.max())
    return e / e.sum()


def pdpo_bandit_objective(
    theta: np.ndarray, pairs: list[tuple[int, int]], beta: float, alpha: float, kl_estimator: str = "data"
) -> tuple[float, np.ndarray]:
    """p-DPO loss and its gradient in the logits ``theta`` (``pi = softmax(theta)``, uniform ``pi_ref``).

    ``sum_{(w,l)} -log sigma(beta (log pi_w - log pi_l))`` plus ``gamma = beta/alpha`` times the
    forward-KL estimate: ``data`` -> ``sum_{(w,l)} (-log pi_w - log pi_l)`` (the completions of the
    data, §7.1 / Prop. 5), ``ref`` -> ``(2 |D| / K) sum_y -log pi_y`` (the exact
    ``KL(pi_ref || pi)`` up to a constant, at the same total weight).  Convex in ``theta``.
    """
    gamma = beta / alpha
    k = theta.size
    lse = float(np.logaddexp.reduce(theta))
    p = np.exp(theta - lse)
    counts = np.zeros(k)
    loss = 0.0
    grad = np.zeros(k)
    for w, lo in pairs:
        m = beta * (theta[w] - theta[lo])
        loss += float(np.logaddexp(0.0, -m))
        s = 0.5 * (1.0 - math.tanh(0.5 * m))  # sigma(-m)
        grad[w] -= beta * s
        grad[lo] += beta * s
        counts[w] += 1.0
        counts[lo] += 1.0
    if kl_estimator == "ref":
        counts = np.full(k, 2.0 * len(pairs) / k)
    elif kl_estimator != "data":
        raise ValueError(f"kl_estimator must be 'data' or 'ref', got {kl_estimator!r}")
    # -log pi_i = lse - theta_i;  d/dtheta = p - e_i
    loss += gamma * float(counts @ (lse - theta))
    grad += gamma * (counts.sum() * p - counts)
    return loss, grad


def pdpo_bandit_pgd(
    pairs: list[tuple[int, int]],
    n_arms: int,
    beta: float,
    alpha: float,
    kl_estimator: str = "data",
    steps: int = 20000,
    tol: float = 1e-10,
) -> tuple[np.ndarray, int]:
    """p-DPO solved by projected gradient descent over the centred logits ``{theta : sum theta = 0}``.

    ``pi = softmax(theta)`` maps that hyperplane one-to-one onto the open simplex, so this is the
    paper's "projected gradient descent over {pi(y_i)}" in coordinates where the problem is convex
    and well conditioned (Euclidean PGD on ``pi`` itself faces curvatures ``~ gamma / pi^2`` that
    differ by ~1e11 when an arm's probability is ~1e-6).  Nesterov momentum with gradient-based
    restarts, Armijo backtracking on the step; stops when the projected gradient's max-norm is
    below ``tol``.  Returns ``(pi, iterations)``.
    """
    theta = np.zeros(n_arms)
    y = theta.copy()
    t_mom = 1.0
    lr = 1.0 / (beta * beta * len(pairs) + 1.0)

    def proj(v: np.ndarray) -> np.ndarray:
        return v - v.mean()

    for it in range(1, steps + 1):
        f_y, g_y = pdpo_bandit_objective(y, pairs, beta, alpha, kl_estimator)
        g_y = proj(g_y)
        while True:
            cand = proj(y - lr * g_y)
            f_c, _ = pdpo_bandit_objective(cand, pairs, beta, alpha, kl_estimator)
            if f_c <= f_y - 0.5 * lr * float(g_y @ g_y) + 1e-15 * abs(f_y) or lr < 1e-16:
                break
            lr *= 0.5
        if float(g_y @ (cand - theta)) > 0:  # momentum points uphill: restart
            t_mom = 1.0
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t_mom * t_mom))
        y = cand + ((t_mom - 1.0) / t_next) * (cand - theta)
        theta, t_mom = cand, t_next
        lr *= 1.25
        _, g = pdpo_bandit_objective(theta, pairs, beta, alpha, kl_estimator)
        if float(np.max(np.abs(proj(g)))) < tol:
            return _softmax(theta), it
    return _softmax(theta), steps


def pdpo_bandit_cvxpy(
    pairs: list[tuple[int, int]], n_arms: int, beta: float, alpha: float, kl_estimator: str = "data"
) -> np.ndarray:
    """Reference: the same convex p-DPO problem in the logits, solved by cvxpy (tests only)."""
    import cvxpy as cp

    theta = cp.Variable(n_arms)
    gamma = beta / alpha
    lse = cp.log_sum_exp(theta)
    counts = np.zeros(n_arms)
    terms = []
    for w, lo in pairs:
        terms.append(cp.logistic(-beta * (theta[w] - theta[lo])))
        counts[w] += 1.0
        counts[lo] += 1.0
    if kl_estimator == "ref":
        counts = np.full(n_arms, 2.0 * len(pairs) / n_arms)
    objective = cp.sum(cp.hstack(terms)) + gamma * (counts.sum() * lse - counts @ theta)
    cp.Problem(cp.Minimize(objective), [cp.sum(theta) == 0]).solve(solver="CLARABEL")
    return _softmax(np.asarray(theta.value, dtype=np.float64))


def run_bandit_closure(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Fig. B.2: p-DPO (projected GD) and IPO (exact QP) with and without the transitive closure.

    Config keys (``DEFAULT_BANDIT``): ``n_arms`` K; ``betas`` and ``alphas`` (p-DPO grid,
    ``gamma = beta/alpha``); ``ipo_tau_inv`` (IPO's 1/tau values; ``None`` = p-DPO's effective
    ``log(alpha-1)/beta`` so both share the x-axis); ``kl_estimator`` (``data``/``ref``);
    ``pgd_steps``, ``pgd_tol``, ``prob_floor``.  Deterministic (``seed`` is recorded only).
    Table: one row per (method, beta, alpha, tau_inv, closed, arm) with ``prob``, and per setting
    the ``spread`` ``max psi - min psi``.  Summary: the largest p-DPO change in an arm probability
    due to the closure, in how many (beta, alpha) settings it is smaller than IPO's change at the
    same 1/tau, the IPO spread ratios (observed and Prop. 7's ``K/2``) and their largest
    deviation from Prop. 7's closed forms.
    """
    name = "bandit_closure"
    cfg = resolve_config(name, DEFAULT_BANDIT, config)
    k = int(cfg["n_arms"])
    if k < 3:
        raise ValueError(f"theory experiment {name!r}: config key 'n_arms' must be >= 3 (Prop. 7 needs n > 2), got {k}")
    for beta in cfg["betas"]:
        check_positive(name, "betas", float(beta))
    for alpha in cfg["alphas"]:
        if not float(alpha) > 2:
            raise ValueError(
                f"theory experiment {name!r}: config key 'alphas' needs values > 2 (log(alpha-1) > 0), got {alpha!r}"
            )
    if cfg["kl_estimator"] not in ("data", "ref"):
        raise ValueError(
            f"theory experiment {name!r}: config key 'kl_estimator' must be 'data' or 'ref', got "
            f"{cfg['kl_estimator']!r}"
        )
    chain = chain_pairs(k)
    closed = transitive_closure(chain)
    datasets = {False: chain, True: closed}
    rows = []
    for beta in map(float, cfg["betas"]):
        for alpha in map(float, cfg["alphas"]):
            tau_inv = math.log(alpha - 1.0) / beta
            for is_closed, pairs in datasets.items():
                p, iters = pdpo_bandit_pgd(
                    pairs, k, beta, alpha, cfg["kl_estimator"], int(cfg["pgd_steps"]), float(cfg["pgd_tol"])
                )
                rows += _rows("p-DPO", beta, alpha, tau_inv, is_closed, p, iters)
    ipo_grid = cfg["ipo_tau_inv"]
    if ipo_grid is None:
        ipo_grid = sorted({math.log(float(a) - 1.0) / float(b) for b in cfg["betas"] for a in cfg["alphas"]})
    for tau_inv in map(float, ipo_grid):
        check_positive(name, "ipo_tau_inv", tau_inv)
        for is_closed, pairs in datasets.items():
            rows += _rows("IPO", float("nan"), float("nan"), tau_inv, is_closed, ipo_bandit_qp(pairs, k, tau_inv), 0)
    table = pd.DataFrame(rows)
    summary = _summary(table, k)
    return {"name": name, "config": cfg, "seed": seed, "table": table, "summary": summary}


def _rows(
    method: str, beta: float, alpha: float, tau_inv: float, closed: bool, p: np.ndarray, iters: int
) -> list[dict[str, Any]]:
    logp = np.log(p)
    spread = float(logp.max() - logp.min())
    return [
        {
            "method": method,
            "beta": beta,
            "alpha": alpha,
            "tau_inv": tau_inv,
            "closed": closed,
            "arm": i + 1,
            "prob": float(p[i]),
            "spread": spread,
            "iterations": iters,
        }
        for i in range(p.size)
    ]


def _summary(table: pd.DataFrame, k: int) -> dict[str, float]:
    key = ["beta", "alpha", "tau_inv", "arm"]
    pd_ = table[table.method == "p-DPO"]
    wide = pd_.pivot_table(index=key, columns="closed", values="prob")
    pdpo_diff = float((wide[True] - wide[False]).abs().max())
    ipo = table[(table.method == "IPO") & (table.arm == 1)].pivot_table(
        index="tau_inv", columns="closed", values="spread"
    )
    ratios = (ipo[False] / ipo[True]).to_numpy()
    taus = ipo.index.to_numpy(dtype=float)
    chain_pred = np.array([prop7_spreads(k, t)[0] for t in taus])
    closed_pred = np.array([prop7_spreads(k, t)[1] for t in taus])
    dev = max(np.max(np.abs(ipo[False].to_numpy() - chain_pred)), np.max(np.abs(ipo[True].to_numpy() - closed_pred)))
    ipo_probs = table[table.method == "IPO"].pivot_table(index=["tau_inv", "arm"], columns="closed", values="prob")
    spreads_pd = pd_[pd_.arm == 1].pivot_table(index=["beta", "alpha"], columns="closed", values="spread")
    # per (beta, alpha): is p-DPO's change smaller than IPO's at the same (effective) 1/tau?
    pdpo_change = (wide[True] - wide[False]).abs().groupby(level=["beta", "alpha", "tau_inv"]).max()
    ipo_change = (ipo_probs[True] - ipo_probs[False]).abs().groupby(level="tau_inv").max()
    ipo_taus = ipo_change.index.to_numpy(dtype=float)
    wins, compared = 0, 0
    for (_, _, tau_inv), change in pdpo_change.items():
        match = np.flatnonzero(np.isclose(ipo_taus, tau_inv, rtol=1e-12, atol=0.0))
        if match.size:
            compared += 1
            wins += int(change < ipo_change.iloc[int(match[0])])
    return {
        "pdpo_smaller_change_than_ipo": wins,
        "settings_compared": compared,
        "pdpo_max_prob_change": pdpo_diff,
        "pdpo_max_spread_ratio": float((spreads_pd[False] / spreads_pd[True]).max()),
        "ipo_max_prob_change": float((ipo_probs[True] - ipo_probs[False]).abs().max()),
        "ipo_spread_ratio_min": float(ratios.min()),
        "ipo_spread_ratio_max": float(ratios.max()),
        "prop7_predicted_ratio": k / 2.0,
        "ipo_max_abs_deviation_from_prop7": float(dev),
        "pdpo_max_iterations": int(pd_["iterations"].max()),
    }


def plot_bandit_closure(result: dict[str, Any], path: str) -> None:
    """Fig. B.2 layout: rows p-DPO / IPO, one column per arm, prob vs effective 1/tau, closure on/off."""
    table = result["table"]
    k = int(result["config"]["n_arms"])
    fig, axes = new_figure(ncols=k, nrows=2, width=3.2, height=2.8)
    from matplotlib.lines import Line2D

    styles = {False: "-", True: "--"}
    betas = sorted(table[table.method == "p-DPO"]["beta"].unique())
    colours = {beta: f"C{i}" for i, beta in enumerate(betas)}
    for col in range(k):
        arm = col + 1
        ax = axes[0, col]
        part = table[(table.method == "p-DPO") & (table.arm == arm)]
        for (beta, closed), grp in part.groupby(["beta", "closed"]):
            grp = grp.sort_values("tau_inv")
            ax.plot(grp["tau_inv"], grp["prob"], styles[bool(closed)], color=colours[beta], marker="o", ms=3)
        ax.set_title(f"p-DPO: pi(y{arm})")
        ax = axes[1, col]
        part = table[(table.method == "IPO") & (table.arm == arm)]
        for closed, grp in part.groupby("closed"):
            grp = grp.sort_values("tau_inv")
            ax.plot(grp["tau_inv"], grp["prob"], styles[bool(closed)], color="k", marker="o", ms=3)
        ax.set_title(f"IPO: pi(y{arm})")
        for r in range(2):
            axes[r, col].set_xscale("log")
            axes[r, col].set_xlabel("(effective) 1/tau")
            axes[r, col].set_ylim(0, 1)
    # colour = p-DPO's beta (IPO in black), line style = closure: two legends beside the panels
    beta_handles = [Line2D([], [], color=colours[b], label=f"β = {b:g}") for b in betas]
    closure_handles = [Line2D([], [], color="grey", ls=styles[c], label="closure" if c else "original data")
                       for c in (False, True)]  # fmt: skip
    fig.legend(handles=beta_handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, title="p-DPO")
    fig.legend(handles=closure_handles, loc="upper left", bbox_to_anchor=(1.0, 0.45), fontsize=8, title="data")
    fig.tight_layout()
    atomic_savefig(fig, path)
