"""Algorithm 2 of the DR paper (robust natural policy gradient) with log-linear policies, Theorem 2.

Instance (meets Assumptions 2-5 of the DR paper): ``|X|`` prompts, uniform ``D_src`` (so
``D_src(x) = nu = 1/|X|``), split into ``G`` prompt groups; finite ``Y``; features
``psi(x, y) = e_{(g(x), y)}`` for all but the last response and ``0`` for the last one (one
reference logit per group), so ``||psi|| <= 1``, the log-linear class is "one free policy per
group" and the weighted Fisher matrix is positive definite for full-support policies
(Assumption 4).  Rewards lie in ``[r_min, r_max]`` with ``r_min > 0`` (Assumption 5); prompts in a
group share a policy but not a reward, so the worst-case prompt weights change the optimum.

The robust KL-regularised value (eq. 4) is ``v_TV(theta) = min_{q: D(q, 1/|X|) <= rho} sum_x q_x
v(theta; x)`` with ``v(theta; x) = E_{y~pi_theta}[r(x,y) - beta log pi_theta/pi_ref]``.  Over the
group policies it is concave in ``pi``, so cvxpy gives the exact robust optimum (the "direct
method"); Algorithm 2 should converge to it linearly.  With fixed weights the NPG step of this
class is ``theta_g <- (1 - eta beta) theta_g + eta (rbar_g^q + beta theta_ref,g)`` (up to the
reference logit), a contraction by ``1 - eta beta``; Theorem 2 proves ``1 - eta beta q_min`` under
a much smaller step size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.dro import worst_case_weights
from core.theory.common import atomic_savefig, check_positive, make_rng, new_figure, resolve_config
from core.theory.robust_logistic import robust_value

__all__ = [
    "DEFAULT_ALG2_NPG",
    "NPGInstance",
    "make_npg_instance",
    "npg_step",
    "plot_alg2_npg",
    "robust_optimum_cvxpy",
    "robust_value_of",
    "run_alg2_npg",
]

DEFAULT_ALG2_NPG: dict[str, Any] = {
    "n_prompts": 8,  # |X| (D_src uniform over them)
    "n_groups": 2,  # G: prompts x with the same x mod G share the policy
    "n_responses": 5,  # |Y|
    "r_min": 1.0,  # rewards in [r_min, r_min + reward_range]  (Assumption 5)
    "reward_range": 2.0,
    "prompt_offset_gap": 1.0,  # prompt x gets offset gap * rank(x): separates the prompts' values
    "beta": 0.5,  # KL regularisation
    "ref_scale": 0.5,  # std of the reference logits theta_ref
    "radius": 20.0,  # B, radius of Theta (checked to exceed ||theta*||)
    "divergence": "tv",
    "rho": 0.1,  # < 1/|X| keeps every q*_x > 0 (Theorem 2's q_min > 0)
    "eta": 0.5,  # NPG step size
    "iterations": 60,  # T
    "stochastic_batch_size": 4,  # n of an extra run on sampled minibatches (0 = skip it)
    "value_estimate": "exact",  # "exact": q* from E_y v(theta; x); "sample": from one y ~ pi_theta per prompt
}


class NPGInstance:
    """Rewards ``r[x, y]``, reference logits per group and the feature map of the group-softmax class."""

    def __init__(self, rewards: np.ndarray, group: np.ndarray, theta_ref: np.ndarray, n_groups: int) -> None:
        self.rewards = rewards  # (X, Y)
        self.group = group  # (X,) group of each prompt
        self.theta_ref = theta_ref  # (G * (Y - 1),)
        self.n_groups = n_groups

    @property
    def n_responses(self) -> int:
        return self.rewards.shape[1]

    @property
    def dim(self) -> int:
        return self.n_groups * (self.n_responses - 1)

    def logits(self, theta: np.ndarray) -> np.ndarray:
        """``theta . psi(x, y)`` for every group: shape (G, Y), the last response's logit is 0."""
        per_group = theta.reshape(self.n_groups, self.n_responses - 1)
        return np.concatenate([per_group, np.zeros((self.n_groups, 1))], axis=1)

    def log_policy(self, theta: np.ndarray) -> np.ndarray:
        """``log pi_theta(y | g)`` of shape (G, Y)."""
        lg = self.logits(theta)
        return lg - np.logaddexp.reduce(lg, axis=1, keepdims=True)


def make_npg_instance(cfg: dict[str, Any], rng: np.random.Generator) -> NPGInstance:
    """Rewards ``r_min + gap * rank(x) + U(0, reward_range)`` and Gaussian reference logits.

    The offsets (a random permutation of ``0, gap, 2 gap, ...``) keep the lowest- and highest-value
    prompts distinct near the optimum, so the TV worst case has no tie there.
    """
    nx, ng, ny = int(cfg["n_prompts"]), int(cfg["n_groups"]), int(cfg["n_responses"])
    if ny < 2 or ng < 1 or nx < ng:
        raise ValueError(
            f"theory experiment 'alg2_npg': need n_responses >= 2 and n_prompts >= n_groups >= 1, got {nx}, {ng}, {ny}"
        )
    offsets = float(cfg["prompt_offset_gap"]) * rng.permutation(nx)
    rewards = float(cfg["r_min"]) + offsets[:, None] + float(cfg["reward_range"]) * rng.random((nx, ny))
    theta_ref = float(cfg["ref_scale"]) * rng.standard_normal(ng * (ny - 1))
    return NPGInstance(rewards, np.arange(nx) % ng, theta_ref, ng)


def prompt_values(inst: NPGInstance, theta: np.ndarray, beta: float) -> np.ndarray:
    """``v(theta; x) = sum_y pi(y|x) (r(x,y) - beta log pi(y|x)/pi_ref(y|x))`` for every prompt."""
    logp = inst.log_policy(theta)[inst.group]
    logref = inst.log_policy(inst.theta_ref)[inst.group]
    return np.sum(np.exp(logp) * (inst.rewards - beta * (logp - logref)), axis=1)


def robust_value_of(inst: NPGInstance, theta: np.ndarray, beta: float, divergence: str, rho: float) -> float:
    """``v_TV(theta; D_src) = min_{q in ball} q . v`` (eq. 4), exactly (``= -sup q . (-v)``)."""
    return -robust_value(-prompt_values(inst, theta, beta), divergence, rho)


def _score_features(inst: NPGInstance) -> np.ndarray:
    """``psi(g, y)`` as a (G, Y, d) array."""
    ng, ny = inst.n_groups, inst.n_responses
    psi = np.zeros((ng, ny, inst.dim))
    for g in range(ng):
        for y in range(ny - 1):
            psi[g, y, g * (ny - 1) + y] = 1.0
    return psi


def npg_step(
    inst: NPGInstance,
    theta: np.ndarray,
    prompts: np.ndarray,
    beta: float,
    eta: float,
    divergence: str,
    rho: float,
    radius: float,
    value_estimate: str,
    rng: np.random.Generator,
    psi: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """One iteration of Algorithm 2 on the minibatch ``prompts`` (lines 4-8).

    ``q* = argmin_{q in ball} sum_i q_i v_i`` (line 5, ``worst_case_weights`` on ``-v``), the
    weighted gradient ``g = sum_i q_i E_y[grad log pi (r - beta log pi/pi_ref)]`` (line 6), the
    weighted Fisher ``G = sum_i q_i E_y[grad log pi grad log pi^T]`` (line 7) and
    ``theta <- Pi_Theta(theta + eta G^+ g)`` (line 8).
    """
    if psi is None:
        psi = _score_features(inst)
    logp_g = inst.log_policy(theta)
    logref_g = inst.log_policy(inst.theta_ref)
    groups = inst.group[prompts]
    logp, pi = logp_g[groups], np.exp(logp_g[groups])  # (n, Y)
    adv = inst.rewards[prompts] - beta * (logp - logref_g[groups])  # r - beta log pi/pi_ref
    if value_estimate == "exact":
        values = np.sum(pi * adv, axis=1)
    else:  # one completion y_i ~ pi_theta(.|x_i) per prompt (line 4)
        ys = np.array([rng.choice(inst.n_responses, p=p / p.sum()) for p in pi])
        values = adv[np.arange(len(prompts)), ys]
    q = worst_case_weights(-values, divergence, rho)
    feats = psi[groups]  # (n, Y, d)
    centred = feats - np.einsum("ny,nyd->nd", pi, feats)[:, None, :]  # grad log pi = psi - E psi
    grads = np.einsum("ny,nyd,ny->nd", pi, centred, adv)  # E_y[grad log pi * adv]
    fishers = np.einsum("ny,nyd,nye->nde", pi, centred, centred)
    g = q @ grads
    fisher = np.einsum("n,nde->de", q, fishers)
    theta_new = theta + eta * (np.linalg.pinv(fisher, rcond=1e-12, hermitian=True) @ g)
    norm = np.linalg.norm(theta_new)
    if norm > radius:
        theta_new *= radius / norm
    eig = np.linalg.eigvalsh(fisher)
    return theta_new, {"q_min": float(q.min()), "fisher_sigma_min": float(eig[0])}


def robust_optimum_cvxpy(inst: NPGInstance, beta: float, divergence: str, rho: float) -> tuple[np.ndarray, float]:
    """Direct method: maximise the robust value over the group policies with cvxpy.

    ``v_x(pi) = pi_g . r_x - beta KL(pi_g || pi_ref,g)`` is concave in ``pi``; the inner minimum is
    dualised (``tv``: ``rho min_x v_x + max_eta [(1-rho) eta - mean_x (eta - v_x)_+]``; ``chi2``:
    ``max_eta eta - sqrt(1 + 2 rho) ||(eta - v)_+||_2 / sqrt|X|``).  Returns ``(theta*, v*)`` with
    ``theta*_{g,y} = log pi*_{g,y} - log pi*_{g,last}`` and ``v*`` re-evaluated exactly.
    """
    import cvxpy as cp

    ng, ny, nx = inst.n_groups, inst.n_responses, inst.rewards.shape[0]
    ref = np.exp(inst.log_policy(inst.theta_ref))
    pol = cp.Variable((ng, ny), nonneg=True)
    values = []
    for x in range(nx):
        g = int(inst.group[x])
        values.append(pol[g] @ inst.rewards[x] - beta * cp.sum(cp.rel_entr(pol[g], ref[g])))
    v = cp.hstack(values)
    eta = cp.Variable()
    if divergence == "none" or rho == 0:
        objective = cp.sum(v) / nx
    elif divergence == "tv":
        objective = cp.min(v) if rho >= 1 else rho * cp.min(v) + (1 - rho) * eta - cp.sum(cp.pos(eta - v)) / nx
    elif divergence == "chi2":
        objective = eta - np.sqrt(1 + 2 * rho) * cp.norm(cp.pos(eta - v), 2) / np.sqrt(nx)
    else:
        raise ValueError(f"robust_optimum_cvxpy supports divergences none/tv/chi2, got {divergence!r}")
    problem = cp.Problem(cp.Maximize(objective), [cp.sum(pol, axis=1) == 1])
    problem.solve(solver="CLARABEL")
    if pol.value is None:
        raise RuntimeError(f"cvxpy failed on the robust policy problem: status {problem.status}")
    p = np.maximum(np.asarray(pol.value), 1e-300)
    theta = (np.log(p[:, :-1]) - np.log(p[:, -1:])).reshape(-1)
    return theta, robust_value_of(inst, theta, beta, divergence, rho)


def _potential(inst: NPGInstance, theta_star: np.ndarray, theta: np.ndarray) -> float:
    """Lyapunov potential ``Phi(pi) = sum_x D_src(x) KL(pi*(.|x) || pi(.|x))`` of the proof."""
    ls = inst.log_policy(theta_star)[inst.group]
    lt = inst.log_policy(theta)[inst.group]
    return float(np.mean(np.sum(np.exp(ls) * (ls - lt), axis=1)))


def run_alg2_npg(config: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Theorem 2: robust value suboptimality of Algorithm 2 against the iteration, vs the direct optimum.

    Config keys (``DEFAULT_ALG2_NPG``): ``n_prompts, n_groups, n_responses, r_min,
    reward_range, prompt_offset_gap, beta, ref_scale, radius`` (the instance and Theta); ``divergence`` (tv/chi2),
    ``rho``; ``eta``; ``iterations``; ``stochastic_batch_size`` (extra run with that many prompts
    sampled per step, 0 skips it); ``value_estimate`` (``exact`` or ``sample``: how line 5 scores a
    prompt).  The ``full`` run uses every prompt once per step (the minibatch is the whole
    ``D_src``).  Table: one row per (run, iteration) with the robust value, suboptimality, the
    potential ``Phi``, ``q_min`` and ``sigma_min`` of the weighted Fisher.  Summary: the fitted
    per-step contraction factor of the suboptimality over the first iterations, the final
    suboptimality, ``1 - eta beta`` and Theorem 2's ``1 - eta beta q_min``.
    """
    name = "alg2_npg"
    cfg = resolve_config(name, DEFAULT_ALG2_NPG, config)
    for key in ("n_prompts", "n_groups", "n_responses", "r_min", "reward_range", "beta", "radius", "eta", "iterations"):
        check_positive(name, key, float(cfg[key]))
    check_positive(name, "rho", float(cfg["rho"]), allow_zero=True)
    if cfg["value_estimate"] not in ("exact", "sample"):
        raise ValueError(
            f"theory experiment {name!r}: config key 'value_estimate' must be 'exact' or 'sample', got "
            f"{cfg['value_estimate']!r}"
        )
    if cfg["divergence"] not in ("tv", "chi2", "none"):
        raise ValueError(
            f"theory experiment {name!r}: config key 'divergence' must be tv, chi2 or none, got {cfg['divergence']!r}"
        )
    rng = make_rng(seed)
    inst = make_npg_instance(cfg, rng)
    beta, eta, div, rho = float(cfg["beta"]), float(cfg["eta"]), cfg["divergence"], float(cfg["rho"])
    radius = float(cfg["radius"])
    theta_star, v_star = robust_optimum_cvxpy(inst, beta, div, rho)
    if np.linalg.norm(theta_star) >= radius:
        raise ValueError(
            f"theory experiment {name!r}: the robust optimum has ||theta*|| = {np.linalg.norm(theta_star):.3g} "
            ">= radius "
            f"{radius}; increase config key 'radius' so that the direct method solves the same problem"
        )
    psi = _score_features(inst)
    runs = [("full", None)]
    if int(cfg["stochastic_batch_size"]) > 0:
        runs.append((f"minibatch_n{int(cfg['stochastic_batch_size'])}", int(cfg["stochastic_batch_size"])))
    nx = int(cfg["n_prompts"])
    rows = []
    for run, batch in runs:
        theta = np.zeros(inst.dim)  # pi_1 uniform (Algorithm 2, line 1)
        stats = {"q_min": float("nan"), "fisher_sigma_min": float("nan")}
        for t in range(int(cfg["iterations"]) + 1):
            value = robust_value_of(inst, theta, beta, div, rho)
            rows.append(
                {
                    "run": run,
                    "iteration": t,
                    "robust_value": value,
                    "suboptimality": v_star - value,
                    "potential": _potential(inst, theta_star, theta),
                    **stats,
                }
            )
            prompts = np.arange(nx) if batch is None else rng.integers(0, nx, size=batch)
            theta, stats = npg_step(inst, theta, prompts, beta, eta, div, rho, radius, cfg["value_estimate"], rng, psi)
    table = pd.DataFrame(rows)
    full = table[table.run == "full"]
    sub = full["suboptimality"].to_numpy()
    k = _linear_window(sub)
    rate = float(np.exp(np.polyfit(np.arange(k), np.log(sub[:k]), 1)[0])) if k >= 2 else float("nan")
    q_min = float(full["q_min"].min())
    summary = {
        "robust_optimum": v_star,
        "theta_star_norm": float(np.linalg.norm(theta_star)),
        "fitted_contraction": rate,
        "fit_window": k,
        "one_minus_eta_beta": 1.0 - eta * beta,
        "theorem2_contraction": 1.0 - eta * beta * q_min,
        "q_min": q_min,
        "fisher_sigma_min": float(full["fisher_sigma_min"].min()),
        "initial_suboptimality": float(sub[0]),
        "final_suboptimality": float(sub[-1]),
    }
    for run, _ in runs[1:]:
        summary[f"{run}_final_suboptimality"] = float(table[table.run == run]["suboptimality"].iloc[-1])
    return {"name": name, "config": cfg, "seed": seed, "table": table, "summary": summary}


def _linear_window(sub: np.ndarray, floor: float = 1e-8) -> int:
    """Number of leading iterations before the suboptimality reaches numerical precision."""
    below = np.flatnonzero(sub <= floor)
    return int(below[0]) if below.size else int(sub.size)


def plot_alg2_npg(result: dict[str, Any], path: str) -> None:
    """Suboptimality (log scale) and the potential against the iteration, per run."""
    table, s = result["table"], result["summary"]
    fig, axes = new_figure(ncols=2)
    for run, part in table.groupby("run", sort=False):
        axes[0, 0].plot(part["iteration"], part["suboptimality"].clip(lower=1e-16), label=run)
        axes[0, 1].plot(part["iteration"], part["potential"].clip(lower=1e-16), label=run)
    t = table[table.run == "full"]["iteration"].to_numpy(dtype=float)
    s0 = s["initial_suboptimality"]
    axes[0, 0].plot(t, s0 * s["one_minus_eta_beta"] ** t, ":", color="gray", label="(1 - eta beta)^t")
    axes[0, 0].set_ylabel("v_TV(theta*) - v_TV(theta_t)")
    axes[0, 1].set_ylabel("potential Phi(pi_t)")
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_xlabel("iteration t")
        ax.legend(fontsize=7)
    cfg = result["config"]
    axes[0, 0].set_title(f"Alg. 2 robust NPG ({cfg['divergence']}, rho={cfg['rho']})")
    axes[0, 0].set_ylim(bottom=1e-16)
    atomic_savefig(fig, path)
