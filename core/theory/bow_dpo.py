"""DPO degeneration in a bag-of-words policy (distillation paper §4.1, Props. 1-3, Cor. 1) and the
finite optima of d-DPO / p-DPO (§7.1, Props. 5-6).

Policy over sequences of length ``n`` from a vocabulary of ``V`` tokens:
``log pi_theta(y) = c(y) . theta - n Z(theta)``, ``Z = log sum_i exp(theta_i)``, with the upper
bound ``log pibar_theta(y) = c(y) . theta - n max_j theta_j`` (Prop. 2).  ``pi_ref = pi_{theta_ref}``
and gradient descent starts at ``theta(0) = 0``.  For disjoint pairs ``(y_w, y_l)`` of equal length
the log-partition cancels in the DPO margin, ``log pi(y_w)/pi(y_l) = (c_w - c_l) . theta``.

* DPO: ``-log sigma(beta (c_w - c_l) . (theta - theta_ref))`` per pair.  Prop. 2: ``pibar(y_w)``
  never increases; Prop. 3: ``log pi(yhat) - log pi(y_w) = tau(t) k`` with ``yhat = [i]*n``,
  ``i = argmax (c_w - c_l)``, ``k = n max(c_w - c_l) - c_w . (c_w - c_l) >= 0``; Cor. 1: the
  dispreferred responses' probability goes to 0 at the (unreached) optimum.
* d-DPO (eq. 7): ``(r_w - r_l - beta (c_w - c_l) . (theta - theta_ref))^2``.
* p-DPO (eq. 13): DPO + ``gamma`` forward-KL estimate, ``gamma = beta / alpha``; ``data``:
  ``-log pi(y_w) - log pi(y_l)`` per pair (§7.1), ``ref``: ``2 |D| KL(pi_ref || pi_theta)`` (exact:
  ``n KL`` of the token distributions per sequence).
Props. 5-6 give, for a fixed ``pi(y_w)``, the optimal ``pi(y_l)`` in closed form
(:func:`pdpo_optimal_loser_prob`, :func:`ddpo_optimal_loser_prob`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.theory.common import atomic_savefig, check_positive, make_rng, new_figure, resolve_config

__all__ = [
    "DEFAULT_BOW_DEGENERATION",
    "BowProblem",
    "ddpo_optimal_loser_prob",
    "make_pairs",
    "pdpo_optimal_loser_prob",
    "plot_bow_degeneration",
    "run_bow_degeneration",
]

METHODS = ("dpo", "d-dpo", "p-dpo")

DEFAULT_BOW_DEGENERATION: dict[str, Any] = {
    "vocab_size": 6,  # V
    "length": 4,  # n, tokens per response
    "n_pairs": 1,  # disjoint preference pairs (Prop. 2 is stated for one pair)
    "pairs": None,  # explicit [[y_w tokens], [y_l tokens]] pairs; None = random disjoint pairs
    "beta": 1.0,
    "alpha": 10.0,  # p-DPO: gamma = beta / alpha (> 1 for Prop. 5)
    "kl_estimator": "data",  # p-DPO forward-KL estimate: "data" (the pairs' completions) or "ref" (exact)
    "target_margin": 2.0,  # d-DPO: r_tgt(y_w) - r_tgt(y_l)
    "ref_logit_scale": 0.0,  # theta_ref ~ scale * N(0, I); 0 = uniform pi_ref
    "lr_scale": 0.5,  # each method's step size is lr_scale / L, L its loss's smoothness bound
    "steps": 2000,
    "methods": list(METHODS),
    "table_points": 120,  # log-spaced steps kept in the output table (the summary uses every step)
}


def make_pairs(cfg: dict[str, Any], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random mutually disjoint pairs (Assumption 1) with ``||c_w - c_l||_0 > 1`` (strict Prop. 2)."""
    v, n, m = int(cfg["vocab_size"]), int(cfg["length"]), int(cfg["n_pairs"])
    seen: set[tuple[int, ...]] = set()
    pairs = []
    for _ in range(10000):
        if len(pairs) == m:
            break
        yw = rng.integers(0, v, size=n)
        yl = rng.integers(0, v, size=n)
        cw, cl = np.bincount(yw, minlength=v), np.bincount(yl, minlength=v)
        keys = (tuple(yw), tuple(yl))
        if np.count_nonzero(cw - cl) > 1 and keys[0] != keys[1] and not (set(keys) & seen):
            seen |= set(keys)
            pairs.append((yw, yl))
    if len(pairs) < m:
        raise ValueError(f"theory experiment 'bow_degeneration': could not draw {m} disjoint pairs from V={v}, n={n}")
    return pairs


def _explicit_pairs(cfg: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    v, n = int(cfg["vocab_size"]), int(cfg["length"])
    out = []
    for row, pair in enumerate(cfg["pairs"]):
        if len(pair) != 2:
            raise ValueError(
                f"theory experiment 'bow_degeneration': config key 'pairs' row {row} must be [y_w, y_l], got {pair!r}"
            )
        yw, yl = (np.asarray(s, dtype=int) for s in pair)
        for seq in (yw, yl):
            if seq.shape != (n,) or seq.min() < 0 or seq.max() >= v:
                raise ValueError(
                    f"theory experiment 'bow_degeneration': config key 'pairs' row {row}: responses must be {n} "
                    f"token ids in [0, {v}), got {pair!r}"
                )
        out.append((yw, yl))
    return out


class BowProblem:
    """Count vectors of the pairs, the reference logits and the three losses with their gradients."""

    def __init__(
        self, pairs: list[tuple[np.ndarray, np.ndarray]], vocab: int, length: int, theta_ref: np.ndarray
    ) -> None:
        self.cw = np.stack([np.bincount(w, minlength=vocab) for w, _ in pairs]).astype(np.float64)
        self.cl = np.stack([np.bincount(lo, minlength=vocab) for _, lo in pairs]).astype(np.float64)
        self.delta = self.cw - self.cl
        self.n = length
        self.theta_ref = theta_ref
        self.ref_tokens = np.exp(theta_ref - np.logaddexp.reduce(theta_ref))

    def log_prob(self, counts: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``log pi_theta(y) = c(y) . theta - n Z(theta)``."""
        return counts @ theta - self.n * float(np.logaddexp.reduce(theta))

    def log_prob_upper(self, counts: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Prop. 2's upper bound ``c(y) . theta - n max_j theta_j``."""
        return counts @ theta - self.n * float(theta.max())

    def loss_and_grad(self, method: str, theta: np.ndarray, cfg: dict[str, Any]) -> tuple[float, np.ndarray]:
        """Summed loss over the pairs and its gradient in ``theta`` (DPO / d-DPO / p-DPO)."""
        beta = float(cfg["beta"])
        margin = self.delta @ (theta - self.theta_ref)  # log pi(y_w)/pi(y_l) - log pi_ref(y_w)/pi_ref(y_l)
        if method == "d-dpo":
            resid = float(cfg["target_margin"]) - beta * margin
            return float(np.sum(resid**2)), -2.0 * beta * (resid @ self.delta)
        m = beta * margin
        loss = float(np.sum(np.logaddexp(0.0, -m)))
        grad = -beta * ((0.5 * (1.0 - np.tanh(0.5 * m))) @ self.delta)
        if method == "dpo":
            return loss, grad
        if method != "p-dpo":
            raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
        gamma = beta / float(cfg["alpha"])
        z = float(np.logaddexp.reduce(theta))
        p = np.exp(theta - z)
        pairs = self.delta.shape[0]
        if cfg["kl_estimator"] == "data":
            counts = self.cw.sum(axis=0) + self.cl.sum(axis=0)
            loss += gamma * (2 * pairs * self.n * z - float(counts @ theta))
            grad = grad + gamma * (2 * pairs * self.n * p - counts)
        else:  # 2|D| KL(pi_ref || pi_theta) = 2|D| n (sum_j p_ref,j (log p_ref,j - log p_j))
            loss += gamma * 2 * pairs * self.n * float(self.ref_tokens @ (np.log(self.ref_tokens) - (theta - z)))
            grad = grad + gamma * 2 * pairs * self.n * (p - self.ref_tokens)
        return loss, grad

    def exact_optimum(self, method: str, cfg: dict[str, Any]) -> np.ndarray:
        """The minimiser gradient descent from ``theta = 0`` converges to (d-DPO, p-DPO); may hold ``-inf``.

        d-DPO: the minimum-norm solution of ``beta Delta (theta - theta_ref) = r_w - r_l`` (gradient
        descent never leaves ``span(Delta)``).  p-DPO: strictly convex on ``{sum theta = 0}`` over the
        tokens the KL term sees (all tokens for ``ref``; for ``data`` only those in the pairs —
        the others' logits go to ``-inf``, i.e. probability 0, at the optimum), solved by damped
        Newton to machine precision.  DPO has no finite minimiser (Prop. 1).
        """
        beta = float(cfg["beta"])
        if method == "d-dpo":
            rhs = float(cfg["target_margin"]) / beta + self.delta @ self.theta_ref
            return np.linalg.lstsq(self.delta, rhs, rcond=None)[0]
        if method != "p-dpo":
            raise ValueError(f"no finite optimum for method {method!r} (DPO's infimum is not attained, Prop. 1)")
        vocab = self.delta.shape[1]
        if cfg["kl_estimator"] == "data":
            used = np.flatnonzero(self.cw.sum(axis=0) + self.cl.sum(axis=0) > 0)
        else:
            used = np.arange(vocab)
        k = used.size
        sub = BowProblem.__new__(BowProblem)
        sub.cw, sub.cl, sub.delta = self.cw[:, used], self.cl[:, used], self.delta[:, used]
        sub.n, sub.theta_ref = self.n, self.theta_ref[used]
        ref = self.ref_tokens[used]
        sub.ref_tokens = ref / ref.sum()
        # the DPO margin uses Delta . theta_ref over all tokens; Delta vanishes off `used`, so it is unchanged
        basis = np.linalg.svd(np.eye(k) - 1.0 / k)[0][:, : k - 1]  # orthonormal basis of {sum theta = 0}
        gamma = beta / float(cfg["alpha"])
        weight = 2 * self.delta.shape[0] * self.n
        theta = np.zeros(k)
        for _ in range(100):
            loss, grad = sub.loss_and_grad("p-dpo", theta, cfg)
            g_red = basis.T @ grad
            if float(np.max(np.abs(g_red))) < 1e-12:
                break
            m = beta * (sub.delta @ (theta - sub.theta_ref))
            sig = 0.5 * (1.0 + np.tanh(0.5 * m))
            p = np.exp(theta - np.logaddexp.reduce(theta))
            hess = beta * beta * (sub.delta.T * (sig * (1 - sig))) @ sub.delta + gamma * weight * (
                np.diag(p) - np.outer(p, p)
            )
            step = basis @ np.linalg.solve(basis.T @ hess @ basis, g_red)
            t = 1.0
            while (
                sub.loss_and_grad("p-dpo", theta - t * step, cfg)[0] > loss - 0.25 * t * float(grad @ step)
                and t > 1e-12
            ):
                t *= 0.5
            theta = theta - t * step
        out = np.full(vocab, -np.inf)
        out[used] = theta
        return out

    def smoothness(self, method: str, cfg: dict[str, Any]) -> float:
        """An upper bound ``L`` on the Hessian norm of the method's loss (gradient descent is stable below ``2/L``)."""
        beta = float(cfg["beta"])
        lam = float(np.linalg.eigvalsh(self.delta.T @ self.delta)[-1])
        if method == "d-dpo":
            return 2.0 * beta * beta * lam
        out = beta * beta * lam / 4.0
        if method == "p-dpo":  # + gamma * (2 |D| n) * ||Hessian of Z|| (<= 1/2)
            out += float(beta / float(cfg["alpha"])) * self.delta.shape[0] * self.n
        return out


def _log_probs_with_zeros(prob: BowProblem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log pi(y_w), log pi(y_l)`` where some logits may be ``-inf`` (tokens with probability 0)."""
    finite = np.isfinite(theta)
    z = float(np.logaddexp.reduce(theta[finite]))
    th = np.where(finite, theta, 0.0)
    lw = prob.cw @ th - prob.n * z
    ll = prob.cl @ th - prob.n * z
    lw[(prob.cw[:, ~finite] > 0).any(axis=1)] = -np.inf
    ll[(prob.cl[:, ~finite] > 0).any(axis=1)] = -np.inf
    return lw, ll


def pdpo_optimal_loser_prob(p_w: float, beta: float, alpha: float, ref_w: float, ref_l: float) -> float:
    """Prop. 5: ``argmin_{pi(y_l)}`` of the per-pair p-DPO loss for fixed ``pi(y_w)`` (``alpha > 1``).

    ``min(1 - pi(y_w), pi(y_l))`` with
    ``log pi(y_l) = -log(alpha - 1)/beta + log pi(y_w) + log pi_ref(y_l)/pi_ref(y_w)``.
    """
    if not alpha > 1:
        raise ValueError(f"Prop. 5 needs alpha > 1, got {alpha}")
    log_pl = -math.log(alpha - 1.0) / beta + math.log(p_w) + math.log(ref_l / ref_w)
    return min(1.0 - p_w, math.exp(log_pl))


def ddpo_optimal_loser_prob(p_w: float, beta: float, r_w: float, r_l: float, ref_w: float, ref_l: float) -> float:
    """Prop. 6: ``argmin_{pi(y_l)}`` of the d-DPO loss (eq. 7) for fixed ``pi(y_w)``.

    ``min(1 - pi(y_w), pi(y_l))`` with ``log pi(y_l) = (r_l - r_w)/beta + log pi(y_w) + log pi_ref(y_l)/pi_ref(y_w)``.
    """
    log_pl = (r_l - r_w) / beta + math.log(p_w) + math.log(ref_l / ref_w)
    return min(1.0 - p_w, math.exp(log_pl))


def run_bow_degeneration(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Gradient descent on DPO, d-DPO and p-DPO in the bag-of-words model; trajectories per step.

    Config keys (``DEFAULT_BOW_DEGENERATION``): ``vocab_size`` V, ``length`` n, ``n_pairs`` or explicit
    ``pairs``; ``beta``; ``alpha`` and ``kl_estimator`` (p-DPO); ``target_margin`` (d-DPO's
    ``r_w - r_l``); ``ref_logit_scale``; ``lr_scale`` (each method's step size is
    ``lr_scale / L``, ``L`` its loss's smoothness bound), ``steps``; ``methods`` (subset of
    ``dpo, d-dpo, p-dpo``); ``table_points`` (log-spaced steps kept in ``table``; the full
    per-step ``trajectory`` is returned too).  Table: one row per (method, step, pair) with ``log_p_w``,
    ``log_p_w_upper``, ``log_p_l``, ``log_p_hat`` (the arg-max-difference sequence), ``tau`` (=
    ``theta . Delta / ||Delta||^2``), ``loss``, ``theta_norm``, ``grad_norm``.  Summary: the
    largest one-step increase of DPO's upper bound (Prop. 2: <= 0), the final probabilities, the
    Prop. 3 identity's largest error, the final gradient norms / log-ratios of d-DPO and p-DPO,
    their exact optima (log-probabilities; for p-DPO with the ``data`` estimator the tokens absent
    from the pairs get probability 0) and the final gap to them in nats.
    """
    name = "bow_degeneration"
    cfg = resolve_config(name, DEFAULT_BOW_DEGENERATION, config)
    for key in ("vocab_size", "length", "n_pairs", "beta", "lr_scale", "steps", "table_points"):
        check_positive(name, key, float(cfg[key]))
    check_positive(name, "ref_logit_scale", float(cfg["ref_logit_scale"]), allow_zero=True)
    if not float(cfg["alpha"]) > 1:
        raise ValueError(f"theory experiment {name!r}: config key 'alpha' must be > 1, got {cfg['alpha']!r}")
    if cfg["kl_estimator"] not in ("data", "ref"):
        raise ValueError(
            f"theory experiment {name!r}: config key 'kl_estimator' must be 'data' or 'ref', got "
            f"{cfg['kl_estimator']!r}"
        )
    bad = [m for m in cfg["methods"] if m not in METHODS]
    if bad or not cfg["methods"]:
        raise ValueError(
            f"theory experiment {name!r}: config key 'methods' must be a non-empty subset of {list(METHODS)}, "
            f"got {cfg['methods']!r}"
        )
    rng = make_rng(seed)
    pairs = _explicit_pairs(cfg) if cfg["pairs"] is not None else make_pairs(cfg, rng)
    v, n = int(cfg["vocab_size"]), int(cfg["length"])
    theta_ref = float(cfg["ref_logit_scale"]) * rng.standard_normal(v)
    prob = BowProblem(pairs, v, n, theta_ref)
    hat_tok = np.argmax(prob.delta, axis=1)
    c_hat = np.zeros_like(prob.delta)
    c_hat[np.arange(len(pairs)), hat_tok] = n
    rows = []
    step_sizes = {}
    final_theta = {}
    for method in cfg["methods"]:
        lr = step_sizes[method] = float(cfg["lr_scale"]) / prob.smoothness(method, cfg)
        theta = np.zeros(v)
        for t in range(int(cfg["steps"]) + 1):
            loss, grad = prob.loss_and_grad(method, theta, cfg)
            lw, lwu = prob.log_prob(prob.cw, theta), prob.log_prob_upper(prob.cw, theta)
            ll, lh = prob.log_prob(prob.cl, theta), prob.log_prob(c_hat, theta)
            tau = (prob.delta @ theta) / np.sum(prob.delta**2, axis=1)
            gnorm = float(np.linalg.norm(grad))
            for i in range(len(pairs)):
                rows.append(
                    {
                        "method": method,
                        "step": t,
                        "pair": i,
                        "log_p_w": lw[i],
                        "log_p_w_upper": lwu[i],
                        "log_p_l": ll[i],
                        "log_p_hat": lh[i],
                        "tau": tau[i],
                        "loss": loss,
                        "theta_norm": float(np.linalg.norm(theta)),
                        "grad_norm": gnorm,
                    }
                )
            if t < int(cfg["steps"]):
                theta = theta - lr * grad
        final_theta[method] = theta
    trajectory = pd.DataFrame(rows)
    summary = _summary(trajectory, prob, cfg)
    keep = np.unique(np.geomspace(1, int(cfg["steps"]) + 1, int(cfg["table_points"])).astype(int) - 1)
    table = trajectory[trajectory.step.isin(keep)].reset_index(drop=True)
    for method in cfg["methods"]:
        if method == "dpo":
            continue
        opt = prob.exact_optimum(method, cfg)
        finite = np.isfinite(opt)
        opt_w, opt_l = _log_probs_with_zeros(prob, opt)
        fin_w = prob.log_prob(prob.cw, final_theta[method])
        fin_l = prob.log_prob(prob.cl, final_theta[method])
        summary[f"{method}_optimum_theta_norm"] = float(np.linalg.norm(opt[finite]))
        summary[f"{method}_optimum_zero_prob_tokens"] = int(np.sum(~finite))
        summary[f"{method}_optimum_log_p_w"] = float(opt_w.mean())
        summary[f"{method}_optimum_log_p_l"] = float(opt_l.mean())
        summary[f"{method}_final_gap_to_optimum"] = float(
            max(np.max(np.abs(fin_w - opt_w)), np.max(np.abs(fin_l - opt_l)))
        )
    summary.update({f"{m}_step_size": lr for m, lr in step_sizes.items()})
    return {
        "name": name,
        "config": cfg,
        "seed": seed,
        "table": table,
        "summary": summary,
        "trajectory": trajectory,
        "pairs": [[w.tolist(), lo.tolist()] for w, lo in pairs],
    }


def _summary(table: pd.DataFrame, prob: BowProblem, cfg: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    n = prob.n
    k = n * prob.delta.max(axis=1) - np.sum(prob.cw * prob.delta, axis=1)  # Prop. 3's k per pair
    beta = float(cfg["beta"])
    for method, part in table.groupby("method"):
        first = part[part.step == 0]
        last = part[part.step == part.step.max()]
        out[f"{method}_final_log_p_w"] = float(last["log_p_w"].mean())
        out[f"{method}_final_log_p_l"] = float(last["log_p_l"].mean())
        out[f"{method}_final_log_p_hat"] = float(last["log_p_hat"].mean())
        out[f"{method}_initial_log_p_w"] = float(first["log_p_w"].mean())
        out[f"{method}_final_grad_norm"] = float(last["grad_norm"].iloc[0])
        out[f"{method}_final_theta_norm"] = float(last["theta_norm"].iloc[0])
        ratio = (last["log_p_w"] - last["log_p_l"]).to_numpy() - prob.delta @ prob.theta_ref
        out[f"{method}_final_log_ratio"] = float(ratio.mean())  # log (pi_w/pi_ref_w) / (pi_l/pi_ref_l)
        if method == "dpo":
            steps = part.pivot_table(index="step", columns="pair", values="log_p_w_upper")
            out["dpo_max_upper_bound_increase"] = float(np.diff(steps.to_numpy(), axis=0).max())
            gap = part.pivot_table(index="step", columns="pair", values="log_p_hat") - part.pivot_table(
                index="step", columns="pair", values="log_p_w"
            )
            taus = part.pivot_table(index="step", columns="pair", values="tau")
            out["prop3_max_abs_error"] = float(np.max(np.abs(gap.to_numpy() - taus.to_numpy() * k[None, :])))
            out["prop3_k"] = float(k.min())
            out["dpo_min_tau_increment"] = float(np.diff(taus.to_numpy(), axis=0).min())
    out["pdpo_prop5_log_ratio"] = math.log(float(cfg["alpha"]) - 1.0) / beta
    out["ddpo_prop6_log_ratio"] = float(cfg["target_margin"]) / beta
    return out


def plot_bow_degeneration(result: dict[str, Any], path: str) -> None:
    """Trajectories of log pi(y_w), its upper bound, log pi(y_l) and log pi(yhat) per method (pair 0)."""
    table = result["table"]
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = new_figure(ncols=len(methods), width=3.6, height=3.2)
    for col, method in enumerate(methods):
        ax = axes[0, col]
        part = table[(table.method == method) & (table.pair == 0)]
        steps = part["step"].to_numpy() + 1
        ax.plot(steps, part["log_p_w"], label="log pi(y_w)")
        ax.plot(steps, part["log_p_w_upper"], "--", label="upper bound (Prop. 2)")
        ax.plot(steps, part["log_p_l"], label="log pi(y_l)")
        ax.plot(steps, part["log_p_hat"], ":", label="log pi(yhat) (Prop. 3)")
        summary = result["summary"]
        if f"{method}_optimum_log_p_w" in summary and table["pair"].max() == 0:
            ax.axhline(summary[f"{method}_optimum_log_p_w"], color="C0", lw=0.6, alpha=0.6)
            ax.axhline(summary[f"{method}_optimum_log_p_l"], color="C2", lw=0.6, alpha=0.6, label="exact optimum")
        ax.set_xscale("log")
        ax.set_xlabel("gradient step + 1")
        ax.set_title(method)
    axes[0, 0].set_ylabel("log-probability")
    axes[0, 0].legend(fontsize=6)
    atomic_savefig(fig, path)
