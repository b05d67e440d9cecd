"""Algorithm 1 of the DR paper (robust reward estimation) with linear rewards (Assumption 1).

Rewards ``r_w(x, y) = w . phi(x, y)`` with ``||phi|| <= 1`` and ``||w|| <= F``.  Prompts come from
groups ``g`` with their own feature means; the annotators' reward is linear in the extended
features ``phi (x) e_g``, i.e. ``r*(x, y) = (w* + delta_g) . phi(x, y)`` (``delta_g = 0`` makes the
model well specified), and labels are Bradley-Terry: ``P(y1 > y2) = sigma(r*(y1) - r*(y2))``.

Three experiments:

* ``alg1_rate``: robust-loss suboptimality of the averaged iterate against ``T`` (log-log, fitted
  slope; Theorem 1: ``<= 12 F (1 + 2 rho) sqrt((4 + log n)/n) + 2/sqrt(T)``, i.e. slope ~ -1/2).
* ``alg1_batch``: the minibatch bias of Lemma 1 (``O(sqrt(log n / n))``) and the suboptimality at a
  fixed ``T`` against the minibatch size ``n``.
* ``alg1_shift``: ERM (``rho = 0``) vs DR across ``rho`` on a group-shifted target distribution.
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
from core.theory.robust_logistic import (
    logistic_losses,
    robust_loss,
    robust_sgd,
    robust_value,
    solve_robust_logistic_cvxpy,
)

__all__ = [
    "DEFAULT_ALG1_BATCH",
    "DEFAULT_ALG1_RATE",
    "DEFAULT_ALG1_SHIFT",
    "PreferenceInstance",
    "make_instance",
    "plot_alg1_batch",
    "plot_alg1_rate",
    "plot_alg1_shift",
    "run_alg1_batch",
    "run_alg1_rate",
    "run_alg1_shift",
    "sample_pairs",
]

_DATA_DEFAULTS: dict[str, Any] = {
    "n_examples": 400,  # N, size of the source preference set D
    "dim": 6,  # d_R, feature dimension
    "source_groups": [0.6, 0.25, 0.15],  # prompt-group probabilities of the source distribution
    "group_shift": 0.8,  # ||delta_g|| / ||w*||: how much the groups' true rewards differ
    "feature_noise": 0.7,  # std of the per-response feature noise around the group mean
    "w_norm": 6.0,  # ||w*||
    "radius": 8.0,  # F, the radius of the feasible set W = {||w|| <= F}
}

DEFAULT_ALG1_RATE: dict[str, Any] = {
    **_DATA_DEFAULTS,
    "divergence": "tv",  # tv or chi2 (the ball of the robust loss and of the minibatch weights)
    "rho": 0.05,
    "batch_size": 256,  # n
    "steps_grid": [32, 64, 128, 256, 512, 1024, 2048],  # T values (one run per T, step ~ 1/sqrt T)
    "replicates": 4,  # independent SGD runs per T (the expectation of Theorem 1)
    "step_scale": 1.0,  # eta = step_scale * F / (2 sqrt T)  (Prop. 1 of the appendix: R / (Gamma sqrt T))
}

DEFAULT_ALG1_BATCH: dict[str, Any] = {
    **_DATA_DEFAULTS,
    "divergence": "tv",
    "rho": 0.05,
    "batch_grid": [4, 8, 16, 32, 64, 128, 256],  # minibatch sizes n
    "steps": 1024,  # T for the suboptimality-vs-n runs
    "replicates": 3,
    "bias_samples": 400,  # Monte Carlo minibatches for the Lemma 1 bias at w*
    "step_scale": 1.0,
}

DEFAULT_ALG1_SHIFT: dict[str, Any] = {
    **_DATA_DEFAULTS,
    # sharper labels and a rarer, different minority group than the rate experiments
    "w_norm": 15.0,
    "group_shift": 1.0,
    "source_groups": [0.8, 0.15, 0.05],
    "radius": 20.0,
    "target_groups": [0.05, 0.15, 0.8],  # group probabilities of the shifted target
    "n_target": 4000,  # target pairs used for evaluation
    "divergence": "tv",
    "rhos": [0.0, 0.01, 0.03, 0.1, 0.2],  # rho = 0 is ERM (the standard BT reward model)
    "batch_size": 128,
    "steps": 1024,
    "replicates": 2,
    "step_scale": 1.0,
}


class PreferenceInstance:
    """The population of Algorithm 1: group means, true weights and a sampler of labelled pairs."""

    def __init__(self, means: np.ndarray, w_true: np.ndarray, feature_noise: float) -> None:
        self.means = means  # (G, d) group feature means
        self.w_true = w_true  # (G, d) per-group true reward weights w* + delta_g
        self.feature_noise = feature_noise

    @property
    def n_groups(self) -> int:
        return self.means.shape[0]


def make_instance(cfg: dict[str, Any], rng: np.random.Generator) -> PreferenceInstance:
    """Draw group means (norm 0.6), ``w*`` (norm ``w_norm``) and ``delta_g`` (norm ``group_shift * w_norm``)."""
    dim = int(cfg["dim"])
    groups = len(cfg["source_groups"])
    means = _unit_rows(rng.standard_normal((groups, dim))) * 0.6
    w_star = _unit_rows(rng.standard_normal((1, dim)))[0] * cfg["w_norm"]
    deltas = _unit_rows(rng.standard_normal((groups, dim))) * cfg["group_shift"] * cfg["w_norm"]
    return PreferenceInstance(means, w_star[None, :] + deltas, float(cfg["feature_noise"]))


def sample_pairs(
    inst: PreferenceInstance, group_probs: list[float], n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``n`` Bradley-Terry labelled pairs: ``z = phi(y+) - phi(y-)``, the group and the true margin.

    ``true_margin = r*(y+) - r*(y-)`` (so ``sigma(true_margin)`` is the probability of the observed
    label); features are projected onto the unit ball (Assumption 1).
    """
    probs = np.asarray(group_probs, dtype=np.float64)
    g = rng.choice(inst.n_groups, size=n, p=probs / probs.sum())
    dim = inst.means.shape[1]
    noise = inst.feature_noise / math.sqrt(dim)
    phi1 = _clip_rows(inst.means[g] + noise * rng.standard_normal((n, dim)))
    phi2 = _clip_rows(inst.means[g] + noise * rng.standard_normal((n, dim)))
    diff = phi1 - phi2
    margin = np.einsum("ij,ij->i", diff, inst.w_true[g])
    first_wins = rng.random(n) < 0.5 * (1.0 + np.tanh(0.5 * margin))
    sign = np.where(first_wins, 1.0, -1.0)
    return {"z": sign[:, None] * diff, "group": g, "true_margin": sign * margin}


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _clip_rows(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.maximum(norms, 1.0)


def _validate_data_cfg(name: str, cfg: dict[str, Any]) -> None:
    for key in ("n_examples", "dim", "w_norm", "radius", "feature_noise"):
        check_positive(name, key, float(cfg[key]))
    check_positive(name, "group_shift", float(cfg["group_shift"]), allow_zero=True)
    for key in ("batch_size", "replicates", "steps", "bias_samples", "n_target", "step_scale", "rho"):
        if key in cfg:
            check_positive(name, key, float(cfg[key]), allow_zero=key == "rho")
    _check_probs(name, "source_groups", cfg["source_groups"])
    if cfg.get("divergence", "tv") not in ("tv", "chi2", "none"):
        raise ValueError(
            f"theory experiment {name!r}: config key 'divergence' must be tv, chi2 or none, got {cfg['divergence']!r}"
        )


def _check_probs(name: str, key: str, probs: list[float]) -> None:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 1 or np.any(arr < 0) or not arr.sum() > 0:
        raise ValueError(
            f"theory experiment {name!r}: config key {key!r} must be a list of non-negative group "
            f"probabilities, got {probs!r}"
        )


def _step_size(cfg: dict[str, Any], steps: int) -> float:
    # Appendix Prop. 1: eta = R / (Gamma sqrt T) with R = F (w_1 = 0) and Gamma = 2 (gradient bound).
    return float(cfg["step_scale"]) * float(cfg["radius"]) / (2.0 * math.sqrt(steps))


def _source(cfg: dict[str, Any], seed: int) -> tuple[PreferenceInstance, dict[str, np.ndarray], np.random.Generator]:
    rng = make_rng(seed)
    inst = make_instance(cfg, rng)
    data = sample_pairs(inst, cfg["source_groups"], int(cfg["n_examples"]), rng)
    return inst, data, rng


# ------------------------------------------------------------------------------------ rate vs T
def run_alg1_rate(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Theorem 1: robust-loss suboptimality of Algorithm 1's averaged iterate against ``T``.

    Config keys (defaults in ``DEFAULT_ALG1_RATE``): the data keys ``n_examples, dim,
    source_groups, group_shift, feature_noise, w_norm, radius``; ``divergence`` (``tv``/``chi2``)
    and ``rho`` of the robust loss; ``batch_size`` n; ``steps_grid`` (the T values); ``replicates``
    (independent runs per T, averaged as the expectation); ``step_scale`` (eta = scale F/(2 sqrt T)).
    Table: one row per (T, replicate) with the robust loss of ``w_bar`` and its suboptimality
    against the cvxpy optimum.  Summary: ``slope`` of log mean-suboptimality vs log T.
    """
    name = "alg1_rate"
    cfg = resolve_config(name, DEFAULT_ALG1_RATE, config)
    _validate_data_cfg(name, cfg)
    steps_grid = [int(t) for t in cfg["steps_grid"]]
    if len(steps_grid) < 2 or min(steps_grid) < 1:
        raise ValueError(
            f"theory experiment {name!r}: config key 'steps_grid' needs >= 2 positive T values, got "
            f"{cfg['steps_grid']!r}"
        )
    _, data, rng = _source(cfg, seed)
    z, div, rho, radius = data["z"], cfg["divergence"], float(cfg["rho"]), float(cfg["radius"])
    w_opt, opt_value = solve_robust_logistic_cvxpy(z, None, div, rho, radius)
    rows = []
    for steps in steps_grid:
        for rep in range(int(cfg["replicates"])):
            w_bar, _ = robust_sgd(z, None, div, rho, radius, steps, int(cfg["batch_size"]), _step_size(cfg, steps), rng)
            value = robust_loss(w_bar, z, None, div, rho)
            rows.append({"steps": steps, "replicate": rep, "robust_loss": value, "suboptimality": value - opt_value})
    table = pd.DataFrame(rows)
    means = table.groupby("steps")["suboptimality"].mean()
    slope, intercept = slope_or_nan(means.index.to_numpy(dtype=float), means.to_numpy())
    n = int(cfg["batch_size"])
    summary = {
        "slope": slope,
        "intercept": intercept,
        "robust_optimum": opt_value,
        "w_opt_norm": float(np.linalg.norm(w_opt)),
        "theorem1_bias_bound": 12 * radius * (1 + 2 * rho) * math.sqrt((4 + math.log(n)) / n),
        "min_mean_suboptimality": float(means.min()),
        "max_mean_suboptimality": float(means.max()),
    }
    return {"name": name, "config": cfg, "seed": seed, "table": table, "summary": summary}


def plot_alg1_rate(result: dict[str, Any], path: str) -> None:
    """Log-log plot of suboptimality vs T (replicates, their mean, the fitted line and a -1/2 guide)."""
    table, s = result["table"], result["summary"]
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.scatter(table["steps"], table["suboptimality"].clip(lower=1e-12), s=10, alpha=0.4, label="replicates")
    means = table.groupby("steps")["suboptimality"].mean()
    ax.plot(means.index, means.to_numpy(), "o-", label="mean")
    t = means.index.to_numpy(dtype=float)
    ax.plot(t, np.exp(s["intercept"]) * t ** s["slope"], "--", label=f"fit: slope {s['slope']:.2f}")
    ax.plot(t, means.iloc[0] * (t / t[0]) ** -0.5, ":", color="gray", label="slope -1/2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("T (iterations)")
    ax.set_ylabel("robust loss suboptimality of w_bar")
    cfg = result["config"]
    ax.set_title(f"Alg. 1 ({cfg['divergence']}, rho={cfg['rho']}, n={cfg['batch_size']})")
    ax.legend(fontsize=7)
    atomic_savefig(fig, path)


# ------------------------------------------------------------------------------- batch size n
def run_alg1_batch(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Lemma 1 / Theorem 1: the minibatch bias ``l_TV(w; D) - E l_TV(w; x^n)`` and suboptimality vs n.

    Config keys (``DEFAULT_ALG1_BATCH``): the data keys; ``divergence``, ``rho``; ``batch_grid``
    (values of n); ``steps`` (T of the SGD runs); ``replicates``; ``bias_samples`` (Monte Carlo
    minibatches used to estimate the bias at the robust optimum ``w*``); ``step_scale``.
    Table: one row per (n, quantity, replicate) with ``quantity`` in {``bias``,
    ``suboptimality``}.  Summary: log-log slopes of the bias and of the suboptimality vs n, and
    the least-squares constant ``c`` of ``bias ~ c sqrt(log n / n)``.
    """
    name = "alg1_batch"
    cfg = resolve_config(name, DEFAULT_ALG1_BATCH, config)
    _validate_data_cfg(name, cfg)
    grid = [int(n) for n in cfg["batch_grid"]]
    if len(grid) < 2 or min(grid) < 2:
        raise ValueError(
            f"theory experiment {name!r}: config key 'batch_grid' needs >= 2 sizes >= 2, got {cfg['batch_grid']!r}"
        )
    _, data, rng = _source(cfg, seed)
    z, div, rho, radius = data["z"], cfg["divergence"], float(cfg["rho"]), float(cfg["radius"])
    w_opt, opt_value = solve_robust_logistic_cvxpy(z, None, div, rho, radius)
    losses_opt = logistic_losses(w_opt, z)
    steps = int(cfg["steps"])
    rows = []
    for n in grid:
        idx = rng.integers(0, z.shape[0], size=(int(cfg["bias_samples"]), n))
        mb = np.array([robust_value(losses_opt[i], div, rho) for i in idx])
        rows.append({"batch_size": n, "quantity": "bias", "replicate": 0, "value": opt_value - float(mb.mean())})
        for rep in range(int(cfg["replicates"])):
            w_bar, _ = robust_sgd(z, None, div, rho, radius, steps, n, _step_size(cfg, steps), rng)
            rows.append(
                {
                    "batch_size": n,
                    "quantity": "suboptimality",
                    "replicate": rep,
                    "value": robust_loss(w_bar, z, None, div, rho) - opt_value,
                }
            )
    table = pd.DataFrame(rows)
    bias = table[table.quantity == "bias"].set_index("batch_size")["value"]
    sub = table[table.quantity == "suboptimality"].groupby("batch_size")["value"].mean()
    ns = bias.index.to_numpy(dtype=float)
    shape = np.sqrt(np.log(ns) / ns)
    c = float(np.dot(shape, bias.to_numpy()) / np.dot(shape, shape))
    summary = {
        "bias_slope": slope_or_nan(ns, bias.to_numpy())[0],
        "suboptimality_slope": slope_or_nan(sub.index.to_numpy(dtype=float), sub.to_numpy())[0],
        "bias_sqrt_logn_over_n_constant": c,
        "robust_optimum": opt_value,
        "bias_at_smallest_n": float(bias.iloc[0]),
        "bias_at_largest_n": float(bias.iloc[-1]),
    }
    return {"name": name, "config": cfg, "seed": seed, "table": table, "summary": summary}


def plot_alg1_batch(result: dict[str, Any], path: str) -> None:
    """Bias and suboptimality vs n (log-log) with the fitted ``c sqrt(log n / n)`` curve."""
    table, s = result["table"], result["summary"]
    fig, axes = new_figure()
    ax = axes[0, 0]
    bias = table[table.quantity == "bias"].set_index("batch_size")["value"]
    sub = table[table.quantity == "suboptimality"].groupby("batch_size")["value"].mean()
    ns = bias.index.to_numpy(dtype=float)
    ax.plot(ns, bias.clip(lower=1e-12), "o-", label=f"minibatch bias at w* (slope {s['bias_slope']:.2f})")
    ax.plot(
        ns, s["bias_sqrt_logn_over_n_constant"] * np.sqrt(np.log(ns) / ns), ":", color="gray", label="c sqrt(log n / n)"
    )
    ax.plot(sub.index, sub.clip(lower=1e-12), "s-", label=f"suboptimality, T={result['config']['steps']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("minibatch size n")
    ax.set_ylabel("robust loss gap")
    ax.set_title("Alg. 1: dependence on the minibatch size")
    ax.legend(fontsize=7)
    atomic_savefig(fig, path)


# ---------------------------------------------------------------------------- shifted target
def run_alg1_shift(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """ERM vs DR reward models (Algorithm 1 and the exact cvxpy optimum) on a group-shifted target.

    Config keys (``DEFAULT_ALG1_SHIFT``): the data keys; ``target_groups`` (group probabilities of
    the target), ``n_target``; ``divergence``; ``rhos`` (``0`` = ERM); ``batch_size``, ``steps``,
    ``replicates``, ``step_scale`` of Algorithm 1.  Table: one row per (rho, method, replicate)
    with ``method`` in {``alg1``, ``exact``}: expected target BT log-loss (labels integrated under the
    true model), target accuracy (sign agreement with the true margin), source loss, source
    robust loss, the worst group's source loss.  Summary: those metrics for ERM and the best rho.
    """
    name = "alg1_shift"
    cfg = resolve_config(name, DEFAULT_ALG1_SHIFT, config)
    _validate_data_cfg(name, cfg)
    _check_probs(name, "target_groups", cfg["target_groups"])
    if len(cfg["target_groups"]) != len(cfg["source_groups"]):
        raise ValueError(f"theory experiment {name!r}: 'target_groups' and 'source_groups' must have the same length")
    rhos = [float(r) for r in cfg["rhos"]]
    if not rhos or min(rhos) < 0:
        raise ValueError(
            f"theory experiment {name!r}: config key 'rhos' must be a non-empty list of values >= 0, got "
            f"{cfg['rhos']!r}"
        )
    inst, data, rng = _source(cfg, seed)
    target = sample_pairs(inst, cfg["target_groups"], int(cfg["n_target"]), rng)
    z, radius, steps = data["z"], float(cfg["radius"]), int(cfg["steps"])
    rows = []
    for rho in rhos:
        div = "none" if rho == 0 else cfg["divergence"]
        w_exact, _ = solve_robust_logistic_cvxpy(z, None, div, rho, radius)
        candidates = [("exact", 0, w_exact)]
        for rep in range(int(cfg["replicates"])):
            w_bar, _ = robust_sgd(z, None, div, rho, radius, steps, int(cfg["batch_size"]), _step_size(cfg, steps), rng)
            candidates.append(("alg1", rep, w_bar))
        for method, rep, w in candidates:
            rows.append(
                {"rho": rho, "method": method, "replicate": rep, **_metrics(w, data, target, cfg["divergence"], rho)}
            )
    table = pd.DataFrame(rows)
    alg1 = table[table.method == "alg1"].groupby("rho")[["target_loss", "target_accuracy"]].mean()
    best_rho = float(alg1["target_loss"].idxmin())
    summary = {
        "erm_target_loss": float(alg1.loc[rhos[0], "target_loss"]) if rhos[0] == 0 else float("nan"),
        "erm_target_accuracy": float(alg1.loc[rhos[0], "target_accuracy"]) if rhos[0] == 0 else float("nan"),
        "best_rho": best_rho,
        "best_target_loss": float(alg1.loc[best_rho, "target_loss"]),
        "best_target_accuracy": float(alg1.loc[best_rho, "target_accuracy"]),
        "source_target_group_tv": 0.5 * float(np.abs(_norm(cfg["source_groups"]) - _norm(cfg["target_groups"])).sum()),
    }
    return {"name": name, "config": cfg, "seed": seed, "table": table, "summary": summary}


def _norm(p: list[float]) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    return a / a.sum()


def _metrics(
    w: np.ndarray, source: dict[str, np.ndarray], target: dict[str, np.ndarray], divergence: str, rho: float
) -> dict[str, float]:
    m = target["z"] @ w
    p_obs = 0.5 * (1.0 + np.tanh(0.5 * target["true_margin"]))  # prob. of the observed orientation
    expected_loss = p_obs * np.logaddexp(0.0, -m) + (1.0 - p_obs) * np.logaddexp(0.0, m)
    agree = np.sign(m) == np.sign(target["true_margin"])
    src = logistic_losses(w, source["z"])
    groups = source["group"]
    worst = max(float(src[groups == g].mean()) for g in np.unique(groups))
    return {
        "target_loss": float(expected_loss.mean()),
        "target_accuracy": float(agree.mean()),
        "source_loss": float(src.mean()),
        "source_robust_loss": robust_value(src, divergence, rho) if rho > 0 else float(src.mean()),
        "worst_group_source_loss": worst,
        "w_norm": float(np.linalg.norm(w)),
    }


def plot_alg1_shift(result: dict[str, Any], path: str) -> None:
    """Target loss and target accuracy against rho (Algorithm 1 mean +- sd, and the exact optimum)."""
    table = result["table"]
    fig, axes = new_figure(ncols=2)
    for ax, metric, label in (
        (axes[0, 0], "target_loss", "target BT log-loss"),
        (axes[0, 1], "target_accuracy", "target accuracy"),
    ):
        alg = table[table.method == "alg1"].groupby("rho")[metric].agg(["mean", "std"]).fillna(0.0)
        ex = table[table.method == "exact"].set_index("rho")[metric]
        ax.errorbar(alg.index, alg["mean"], yerr=alg["std"], fmt="o-", capsize=3, label="Alg. 1 (w_bar)")
        ax.plot(ex.index, ex.to_numpy(), "s--", label="exact robust optimum")
        ax.set_xlabel("rho (0 = ERM)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    axes[0, 0].set_title("Shifted target: ERM vs DR")
    atomic_savefig(fig, path)
