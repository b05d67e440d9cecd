"""Numerical checks of the theory experiments (core/theory, docs/design.md §1.4).

Each test asserts a claim of the DR paper (Algorithms 1-3, Theorems 1-3, Lemma 1) or of the
distillation paper (Props. 2, 3, 5, 6, 7, Cor. 1, Fig. B.2) with a tolerance that a wrong
implementation breaks.  Budget: ~60 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from core.dro import worst_case_weights_cvxpy
from core.theory import EXPERIMENTS, save_result
from core.theory.bandit import (
    chain_pairs,
    ipo_bandit_qp,
    pdpo_bandit_cvxpy,
    pdpo_bandit_objective,
    pdpo_bandit_pgd,
    prop7_spreads,
    run_bandit_closure,
    transitive_closure,
)
from core.theory.bow_dpo import (
    ddpo_optimal_loser_prob,
    pdpo_optimal_loser_prob,
    run_bow_degeneration,
)
from core.theory.common import fit_loglog_slope, resolve_config
from core.theory.dr_dpo import run_alg3_dpo
from core.theory.linear_reward import run_alg1_batch, run_alg1_rate, run_alg1_shift
from core.theory.robust_logistic import (
    logistic_losses,
    robust_loss,
    robust_sgd,
    robust_value,
    solve_robust_logistic_cvxpy,
)
from core.theory.robust_npg import make_npg_instance, npg_step, run_alg2_npg

# ------------------------------------------------------------------------------ shared runs
SMALL_BATCH = {"batch_grid": [4, 16, 64, 256], "steps": 256, "replicates": 1, "bias_samples": 300}
SMALL_SHIFT = {"rhos": [0.0, 0.03, 0.1], "steps": 256, "replicates": 1, "n_target": 1000}


@pytest.fixture(scope="module")
def alg1_rate():
    return run_alg1_rate({}, 0)


@pytest.fixture(scope="module")
def dr_dpo():
    return run_alg3_dpo({}, 0)


@pytest.fixture(scope="module")
def npg():
    return run_alg2_npg({}, 0)


@pytest.fixture(scope="module")
def bandit():
    return run_bandit_closure({}, 0)


@pytest.fixture(scope="module")
def bow():
    return run_bow_degeneration({}, 0)


# ------------------------------------------------------------------------- robust objectives
@pytest.mark.parametrize("rho", [0.0, 0.03, 0.1, 0.37, 0.9, 0.95, 1.5])
def test_tv_robust_value_matches_cvxpy_reference(rho: float) -> None:
    rng = np.random.default_rng(3)
    losses = rng.exponential(size=20)
    q = worst_case_weights_cvxpy(losses, "tv", rho) if rho > 0 else np.full(20, 1 / 20)
    assert robust_value(losses, "tv", rho) == pytest.approx(float(q @ losses), abs=1e-6)
    assert robust_value(losses, "tv", rho) >= losses.mean() - 1e-12


def test_chi2_robust_value_matches_cvxpy_reference() -> None:
    losses = np.random.default_rng(4).normal(size=15)
    q = worst_case_weights_cvxpy(losses, "chi2", 0.4)
    assert robust_value(losses, "chi2", 0.4) == pytest.approx(float(q @ losses), abs=1e-6)


@pytest.mark.parametrize("divergence,rho", [("tv", 0.1), ("chi2", 0.3), ("none", 0.0)])
def test_cvxpy_robust_logistic_optimum_is_not_beaten(divergence: str, rho: float) -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(60, 4)) / 2
    b = rng.normal(size=60) * 0.3
    w_opt, value = solve_robust_logistic_cvxpy(z, b, divergence, rho, 3.0)
    assert np.linalg.norm(w_opt) <= 3.0 + 1e-9
    assert value == pytest.approx(robust_loss(w_opt, z, b, divergence, rho), abs=1e-12)
    for _ in range(200):  # feasible perturbations never do better
        cand = w_opt + rng.normal(size=4) * rng.choice([1e-3, 1e-2, 1e-1, 1.0])
        cand *= min(1.0, 3.0 / np.linalg.norm(cand))
        assert robust_loss(cand, z, b, divergence, rho) >= value - 1e-7


# --------------------------------------------------------------------------------- Algorithm 1
@pytest.mark.parametrize("divergence,rho", [("tv", 0.1), ("chi2", 0.5)])
def test_robust_sgd_minimises_the_robust_not_the_average_loss(divergence: str, rho: float) -> None:
    from core.theory.linear_reward import DEFAULT_ALG1_RATE, make_instance, sample_pairs

    rng = np.random.default_rng(0)
    cfg = {**DEFAULT_ALG1_RATE, "dim": 3}
    z = sample_pairs(make_instance(cfg, rng), cfg["source_groups"], 80, rng)["z"]
    _, opt = solve_robust_logistic_cvxpy(z, None, divergence, rho, 8.0)
    gaps = {}
    for weights in (divergence, "none"):  # worst-case minibatch weights vs plain SGD (ERM)
        w_bar, _ = robust_sgd(
            z,
            None,
            weights,
            rho,
            8.0,
            3000,
            40,
            8.0 / (2 * math.sqrt(3000)),
            np.random.default_rng(1),
        )
        gaps[weights] = robust_loss(w_bar, z, None, divergence, rho) - opt
    assert gaps[divergence] < 0.02
    assert gaps[divergence] < 0.25 * gaps["none"]


def test_alg1_rate_slope_is_about_minus_half(alg1_rate) -> None:
    s = alg1_rate["summary"]
    assert -0.7 <= s["slope"] <= -0.3, s
    table = alg1_rate["table"]
    assert (table["suboptimality"] >= -1e-6).all()  # the cvxpy optimum is a true optimum
    means = table.groupby("steps")["suboptimality"].mean()
    assert means.iloc[-1] < means.iloc[0] / 4
    assert s["w_opt_norm"] > 1.0  # a non-trivial robust optimum (not the w = 0 corner)
    # the slope is a real fit of these points
    slope, _ = fit_loglog_slope(means.index.to_numpy(float), means.to_numpy())
    assert slope == pytest.approx(s["slope"])


def test_alg1_minibatch_bias_shrinks_with_n() -> None:
    res = run_alg1_batch(SMALL_BATCH, 0)
    table, s = res["table"], res["summary"]
    bias = table[table.quantity == "bias"].set_index("batch_size")["value"]
    assert (bias > 0).all()  # Lemma 1: the minibatch objective underestimates the robust loss
    assert bias.iloc[-1] < bias.iloc[0] / 5
    assert s["bias_slope"] < -0.3
    assert set(table.quantity) == {"bias", "suboptimality"}


def test_alg1_shift_erm_vs_dr_consistency() -> None:
    res = run_alg1_shift(SMALL_SHIFT, 0)
    table = res["table"]
    exact = table[table.method == "exact"].set_index("rho")
    # ERM (rho = 0) minimises the average source loss; robust optima trade it for robustness
    assert exact["source_loss"].idxmin() == 0.0
    # min_w sup_{ball(rho)} grows with rho (nested balls)
    assert np.all(np.diff(exact["source_robust_loss"].to_numpy()) >= -1e-7)
    # DR lowers the worst group's loss relative to ERM
    assert exact.loc[0.1, "worst_group_source_loss"] < exact.loc[0.0, "worst_group_source_loss"]
    assert {"target_loss", "target_accuracy"} <= set(table.columns)
    assert table["target_accuracy"].between(0, 1).all()


# --------------------------------------------------------------------------------- Algorithm 2
def test_robust_npg_converges_linearly_to_direct_optimum(npg) -> None:
    s, table = npg["summary"], npg["table"]
    sub = table[table.run == "full"]["suboptimality"].to_numpy()
    cfg = npg["config"]
    k = s["fit_window"]
    assert k >= 20
    ratios = sub[1:k] / sub[: k - 1]
    assert np.all(ratios <= 1 - cfg["eta"] * cfg["beta"])  # at least linear, every step
    assert np.all(ratios <= 1 - cfg["eta"] * cfg["beta"] * s["q_min"])  # Theorem 2's (weaker) rate
    assert abs(sub[-1]) < 1e-7  # reaches the cvxpy robust optimum
    assert s["q_min"] > 0 and s["fisher_sigma_min"] > 0  # Theorem 2's assumptions hold
    mini = table[table.run != "full"]["suboptimality"].to_numpy()
    assert mini[-1] > 1e3 * abs(sub[-1])  # sampled minibatches stall at a noise floor


def test_robust_npg_chi2_also_converges() -> None:
    res = run_alg2_npg({"divergence": "chi2", "rho": 0.05, "iterations": 40, "stochastic_batch_size": 0}, 1)
    sub = res["table"]["suboptimality"].to_numpy()
    assert abs(sub[-1]) < 1e-7 and sub[10] < 1e-2 * sub[0]


def test_npg_step_pseudo_inverse_leaves_unsampled_group_alone() -> None:
    cfg = {**EXPERIMENTS["alg2_npg"].defaults}
    inst = make_npg_instance(cfg, np.random.default_rng(0))
    theta = np.random.default_rng(1).normal(size=inst.dim) * 0.3
    group0 = np.flatnonzero(inst.group == 0)
    new, stats = npg_step(inst, theta, group0, 0.5, 0.5, "tv", 0.1, 20.0, "exact", np.random.default_rng(2))
    per = inst.n_responses - 1
    assert np.allclose(new[per:], theta[per:])  # singular Fisher block: no update for group 1
    assert not np.allclose(new[:per], theta[:per])
    assert stats["fisher_sigma_min"] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------- Algorithm 3
def test_dr_dpo_suboptimality_falls(dr_dpo) -> None:
    table, s = dr_dpo["table"], dr_dpo["summary"]
    assert (table["suboptimality"] >= -1e-6).all()
    means = table.groupby("steps")["suboptimality"].mean().to_numpy()
    assert np.all(np.diff(means) < 0)
    assert s["last_mean_suboptimality"] < s["first_mean_suboptimality"] / 4
    assert -0.8 <= s["slope"] <= -0.3


# ------------------------------------------------------------------------ bandit (Prop. 7)
def test_transitive_closure() -> None:
    assert transitive_closure(chain_pairs(4)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    with pytest.raises(ValueError, match="cycle"):
        transitive_closure([(0, 1), (1, 2), (2, 0)])


@pytest.mark.parametrize("k", [3, 4, 6])
@pytest.mark.parametrize("tau_inv", [0.05, 1.0, 4.0])
def test_ipo_qp_matches_prop7_closed_form(k: int, tau_inv: float) -> None:
    chain, closed = chain_pairs(k), transitive_closure(chain_pairs(k))
    spreads = []
    for pairs in (chain, closed):
        logp = np.log(ipo_bandit_qp(pairs, k, tau_inv))
        spreads.append(logp.max() - logp.min())
    expected = prop7_spreads(k, tau_inv)
    assert spreads[0] == pytest.approx(expected[0], abs=1e-6)
    assert spreads[1] == pytest.approx(expected[1], abs=1e-6)
    assert spreads[0] / spreads[1] == pytest.approx(k / 2, abs=1e-6)


def test_ipo_qp_matches_cvxpy() -> None:
    import cvxpy as cp

    k, tau_inv = 4, 0.7
    pairs = transitive_closure(chain_pairs(k))
    psi = cp.Variable(k)
    cp.Problem(cp.Minimize(cp.sum_squares(cp.hstack([psi[w] - psi[lo] - tau_inv for w, lo in pairs])))).solve()
    ref = np.exp(psi.value - psi.value.max())
    assert np.allclose(ipo_bandit_qp(pairs, k, tau_inv), ref / ref.sum(), atol=1e-6)


@pytest.mark.parametrize("beta,alpha", [(1.0, 1000.0), (3.0, 20.0), (30.0, 5.0)])
@pytest.mark.parametrize("estimator", ["ref", "data"])
def test_pdpo_pgd_reaches_the_convex_optimum(beta: float, alpha: float, estimator: str) -> None:
    pairs = transitive_closure(chain_pairs(3))
    p, iters = pdpo_bandit_pgd(pairs, 3, beta, alpha, estimator)
    assert iters < 20000
    _, grad = pdpo_bandit_objective(np.log(p), pairs, beta, alpha, estimator)
    assert np.max(np.abs(grad - grad.mean())) < 1e-8
    assert np.allclose(p, pdpo_bandit_cvxpy(pairs, 3, beta, alpha, estimator), atol=1e-4)


def test_bandit_closure_pdpo_robust_ipo_compressed(bandit) -> None:
    s = bandit["summary"]
    assert s["ipo_spread_ratio_min"] == pytest.approx(1.5, abs=1e-6)
    assert s["ipo_spread_ratio_max"] == pytest.approx(1.5, abs=1e-6)
    assert s["ipo_max_abs_deviation_from_prop7"] < 1e-6
    assert s["pdpo_max_prob_change"] < 0.04  # p-DPO barely moves (measured 0.035)
    assert s["ipo_max_prob_change"] > 2.5 * s["pdpo_max_prob_change"]
    assert s["settings_compared"] == 24 and s["pdpo_smaller_change_than_ipo"] == 24
    assert s["pdpo_max_spread_ratio"] < 1.2  # vs IPO's 1.5
    probs = bandit["table"].groupby(["method", "beta", "alpha", "tau_inv", "closed"], dropna=False)["prob"].sum()
    assert np.allclose(probs.to_numpy(), 1.0)


# ------------------------------------------------------------------------------- bag of words
def test_bow_dpo_prop2_upper_bound_never_increases_and_loser_vanishes(bow) -> None:
    traj = bow["trajectory"]
    dpo = traj[traj.method == "dpo"].sort_values("step")
    assert np.all(np.diff(dpo["log_p_w_upper"].to_numpy()) < 0)  # strict: ||c_w - c_l||_0 > 1
    log_pl = dpo["log_p_l"].to_numpy()
    assert np.all(np.diff(log_pl) < 0)
    assert log_pl[-1] < log_pl[0] - math.log(100)  # pi(y_l) -> 0 (Cor. 1)
    assert bow["summary"]["dpo_max_upper_bound_increase"] < 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bow_prop2_prop3_other_pairs(seed: int) -> None:
    res = run_bow_degeneration({"methods": ["dpo"], "steps": 600, "vocab_size": 8, "length": 5}, seed)
    s = res["summary"]
    assert s["dpo_max_upper_bound_increase"] < 0
    assert s["prop3_max_abs_error"] < 1e-9  # log pi(yhat) - log pi(y_w) = tau(t) k
    assert s["dpo_min_tau_increment"] > 0 and s["prop3_k"] >= 0
    assert s["dpo_final_log_p_hat"] > res["trajectory"]["log_p_hat"].iloc[0]  # mass moves to yhat


def test_bow_distillation_and_pessimism_keep_finite_optima(bow) -> None:
    s = bow["summary"]
    for method in ("d-dpo", "p-dpo"):
        assert s[f"{method}_final_gap_to_optimum"] < 0.05
        assert math.isfinite(s[f"{method}_optimum_log_p_l"]) and s[f"{method}_optimum_log_p_l"] > -20
        assert math.isfinite(s[f"{method}_optimum_log_p_w"])
        assert s["dpo_final_log_p_l"] < s[f"{method}_optimum_log_p_l"] - 3
    # Prop. 6: d-DPO's optimum matches the target margin exactly
    assert s["d-dpo_final_log_ratio"] == pytest.approx(s["ddpo_prop6_log_ratio"], abs=1e-8)


def _argmin_loser(objective, upper: float) -> float:
    grid = np.exp(np.linspace(math.log(1e-12), math.log(upper), 200001))
    return float(grid[np.argmin(objective(grid))])


@pytest.mark.parametrize(
    "p_w,beta,alpha,ref_w,ref_l",
    [(0.3, 1.0, 10.0, 0.2, 0.1), (0.05, 3.0, 5.0, 0.1, 0.3), (0.6, 0.5, 2.5, 0.3, 0.5)],
)
def test_prop5_closed_form(p_w: float, beta: float, alpha: float, ref_w: float, ref_l: float) -> None:
    gamma = beta / alpha

    def loss(p_l):
        m = beta * (np.log(p_w / ref_w) - np.log(p_l / ref_l))
        return np.logaddexp(0.0, -m) + gamma * (-math.log(p_w) - np.log(p_l))

    closed = pdpo_optimal_loser_prob(p_w, beta, alpha, ref_w, ref_l)
    assert closed == pytest.approx(_argmin_loser(loss, 1 - p_w), rel=2e-3)


@pytest.mark.parametrize("p_w,beta,r_w,r_l", [(0.3, 1.0, 2.0, 0.5), (0.7, 0.5, 0.0, 1.0), (0.1, 2.0, 1.0, 1.0)])
def test_prop6_closed_form(p_w: float, beta: float, r_w: float, r_l: float) -> None:
    ref_w, ref_l = 0.2, 0.25

    def loss(p_l):
        return (r_w - r_l - beta * (np.log(p_w / ref_w) - np.log(p_l / ref_l))) ** 2

    closed = ddpo_optimal_loser_prob(p_w, beta, r_w, r_l, ref_w, ref_l)
    assert closed == pytest.approx(_argmin_loser(loss, 1 - p_w), rel=2e-3)
    if closed < 1 - p_w:  # interior: zero loss
        assert float(loss(np.array([closed]))[0]) < 1e-20


# ----------------------------------------------------------------------- configs and outputs
def test_default_configs_are_json_and_validated() -> None:
    for exp in EXPERIMENTS.values():
        assert json.loads(json.dumps(exp.defaults)) == exp.defaults
        with pytest.raises(ValueError, match="bogus"):
            exp.run({"bogus": 1}, 0)
    with pytest.raises(ValueError, match="'rho'"):
        resolve_config("x", {"rho": 0.1}, {"rho": "big"})
    with pytest.raises(ValueError, match="n_arms"):
        run_bandit_closure({"n_arms": 2}, 0)
    with pytest.raises(ValueError, match="radius"):
        run_alg2_npg({"radius": 0.5}, 0)


def test_same_seed_same_numbers() -> None:
    cfg = {"steps_grid": [16, 32], "replicates": 1, "batch_size": 16, "n_examples": 80}
    a, b, c = run_alg1_rate(cfg, 7), run_alg1_rate(cfg, 7), run_alg1_rate(cfg, 8)
    assert a["table"].equals(b["table"])
    assert not np.allclose(a["table"]["robust_loss"], c["table"]["robust_loss"])


def test_plots_and_tables_are_written(tmp_path, alg1_rate, dr_dpo, npg, bandit, bow) -> None:
    results = {
        "alg1_rate": alg1_rate,
        "alg3_dpo": dr_dpo,
        "alg2_npg": npg,
        "bandit_closure": bandit,
        "bow_degeneration": bow,
        "alg1_batch": run_alg1_batch({**SMALL_BATCH, "batch_grid": [4, 16], "bias_samples": 20, "steps": 16}, 0),
        "alg1_shift": run_alg1_shift({**SMALL_SHIFT, "rhos": [0.0, 0.1], "steps": 16}, 0),
    }
    assert set(results) == set(EXPERIMENTS)
    for name, res in results.items():
        png = tmp_path / "figures" / f"{name}.png"
        EXPERIMENTS[name].plot(res, str(png))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        save_result(res, tmp_path / f"{name}.csv", tmp_path / f"{name}.md", tmp_path / f"{name}.json")
        saved = json.loads((tmp_path / f"{name}.json").read_text())["summary"]
        assert set(saved) == set(res["summary"])
        for key, value in res["summary"].items():
            if isinstance(value, float) and not math.isfinite(value):
                assert saved[key] is None
            else:
                assert saved[key] == pytest.approx(value)
    leftovers = [f for f in os.listdir(tmp_path / "figures") + os.listdir(tmp_path) if f.startswith(".tmp-")]
    assert leftovers == []


def test_logistic_losses_are_stable() -> None:
    z = np.array([[1000.0], [-1000.0], [0.0]])
    losses = logistic_losses(np.array([1.0]), z)
    assert np.all(np.isfinite(losses))
    assert losses == pytest.approx([0.0, 1000.0, math.log(2)])
