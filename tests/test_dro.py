"""core.dro: exact worst-case weights against the cvxpy reference, and the input contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.dro import (
    all_gather_rows,
    check_radius,
    gather_worst_case_weights,
    weight_statistics,
    worst_case_weights,
    worst_case_weights_cvxpy,
)

ROBUST = ("tv", "chi2", "kl", "cvar")


def divergence_value(weights: np.ndarray, divergence: str) -> float:
    """``D(q, uniform)`` for the divergences of core.dro (``cvar``: ``1 / (n max q)``, the tightest alpha)."""
    q = np.asarray(weights, dtype=np.float64)
    n = q.size
    if divergence == "tv":
        return float(0.5 * np.abs(q - 1.0 / n).sum())
    if divergence == "chi2":
        return float(0.5 * n * np.sum((q - 1.0 / n) ** 2))
    if divergence == "kl":
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.sum(np.where(q > 0, q * np.log(n * q), 0.0)))
    if divergence == "cvar":
        return float(1.0 / (n * q.max()))
    assert divergence == "none", divergence
    return 0.0


def _max_radius(divergence: str, losses: np.ndarray) -> float:
    """The radius at and above which all mass sits on the maximal losses."""
    n = losses.size
    k = int(np.sum(losses == losses.max()))
    return {"tv": (n - k) / n, "chi2": (n / k - 1) / 2, "kl": math.log(n / k), "cvar": k / n}[divergence]


@st.composite
def loss_vectors(draw):
    n = draw(st.integers(1, 512))
    scale = 10.0 ** draw(st.floats(-8, 6))
    kind = draw(st.sampled_from(["normal", "ties", "equal", "negative"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "normal":
        losses = rng.random(n)
    elif kind == "ties":
        losses = rng.integers(0, max(2, n // 4), size=n).astype(float)
    elif kind == "equal":
        losses = np.full(n, 0.7)
    else:
        losses = -rng.random(n) - 0.5
    return losses * scale


@st.composite
def radii(draw, divergence: str, losses: np.ndarray):
    which = draw(st.sampled_from(["zero", "tiny", "middle", "at_max", "above_max"]))
    top = _max_radius(divergence, losses)
    if divergence == "cvar":  # rho is alpha in (0, 1]: small alpha is the most robust
        return {
            "zero": 0.0,
            "tiny": 1.0 - 1e-6,
            "middle": draw(st.floats(0.05, 0.95)),
            "at_max": max(top, 1e-3),
            "above_max": max(top / 2, 1e-3),
        }[which]
    return {
        "zero": 0.0,
        "tiny": 1e-6,
        "middle": draw(st.floats(1e-3, 2.0)) * max(top, 1e-3),
        "at_max": top,
        "above_max": top * 1.5 + 1.0,
    }[which]


def _pull_into_ball(q: np.ndarray, divergence: str, rho: float) -> np.ndarray:
    """Project cvxpy's (possibly slightly infeasible) solution back into the ball along the segment to uniform."""
    n = q.size
    q = np.maximum(q, 0.0)
    q = q / q.sum()
    u = np.full(n, 1.0 / n)
    if divergence == "cvar":
        cap = 1.0 / (rho * n)
        excess = q.max() - cap
        if excess <= 0:
            return q
        t = (cap - 1.0 / n) / (q.max() - 1.0 / n)
        return u + t * (q - u)
    if divergence_value(q, divergence) <= rho:
        return q
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if divergence_value(u + mid * (q - u), divergence) <= rho:
            lo = mid
        else:
            hi = mid
    return u + lo * (q - u)


def _check_against_cvxpy(losses: np.ndarray, divergence: str, rho: float) -> None:
    n = losses.size
    q = worst_case_weights(losses, divergence, rho)
    assert q.shape == losses.shape
    assert np.all(q >= 0)
    assert abs(q.sum() - 1.0) < 1e-12
    if divergence == "cvar":
        if rho > 0:
            assert q.max() <= 1.0 / (rho * n) * (1 + 1e-12)
    else:
        assert divergence_value(q, divergence) <= rho + 1e-9
    # permutation equivariance (and independence of input order under ties)
    perm = np.random.default_rng(n).permutation(n)
    np.testing.assert_allclose(worst_case_weights(losses[perm], divergence, rho), q[perm], rtol=0, atol=1e-12)
    if rho == 0:
        np.testing.assert_array_equal(q, np.full(n, 1.0 / n))
        return
    scale = max(float(np.ptp(losses)), float(np.abs(losses).max()), 1e-300)
    ours = float(q @ losses)
    try:
        ref = worst_case_weights_cvxpy(losses, divergence, rho)
    except Exception:  # the reference solver itself failing is not a property of our solver
        assume(False)
    status = getattr(worst_case_weights_cvxpy, "last_status", "optimal")
    lower = float(_pull_into_ball(ref, divergence, rho) @ losses)
    assert ours >= lower - 1e-6 * scale, (ours, lower)
    if status == "optimal":
        assert ours <= float(ref @ losses) + 1e-6 * scale, (ours, float(ref @ losses))


@pytest.mark.parametrize("divergence", ROBUST)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_cvxpy_reference(divergence, data):
    losses = data.draw(loss_vectors())
    rho = data.draw(radii(divergence, losses))
    _check_against_cvxpy(losses, divergence, rho)


@pytest.mark.parametrize("divergence", ROBUST)
def test_extreme_radius_puts_all_mass_on_the_maxima(divergence):
    losses = np.array([0.3, 2.0, -1.0, 2.0, 0.5])
    rho = {"tv": 0.6, "chi2": 0.75, "kl": math.log(2.5), "cvar": 0.4}[divergence]
    q = worst_case_weights(losses, divergence, rho)
    np.testing.assert_allclose(q, [0, 0.5, 0, 0.5, 0], atol=1e-9)


def test_tv_closed_form_on_a_small_example():
    # m = 0.3 leaves the smallest (0.2) entirely and 0.1 of the second smallest; the max gains 0.3
    q = worst_case_weights(np.array([3.0, 1.0, 2.0, 0.0, 5.0]), "tv", 0.3)
    np.testing.assert_allclose(q, [0.2, 0.1, 0.2, 0.0, 0.5], atol=1e-15)


def test_chi2_closed_form_matches_kkt():
    losses = np.array([0.0, 1.0, 2.0, 3.0])
    q = worst_case_weights(losses, "chi2", 0.1)
    # all four active: q = 1/n + (l - mean) * t with (n/2) * sum (q - 1/n)^2 = rho
    t = math.sqrt(2 * 0.1 / (4 * np.sum((losses - losses.mean()) ** 2)))
    np.testing.assert_allclose(q, 0.25 + (losses - 1.5) * t, atol=1e-14)


@pytest.mark.parametrize("divergence", ("none", *ROBUST))
def test_rho_zero_and_none_give_uniform(divergence):
    losses = np.array([5.0, -1.0, 3.0])
    np.testing.assert_array_equal(worst_case_weights(losses, divergence, 0.0), np.full(3, 1 / 3))
    np.testing.assert_array_equal(worst_case_weights(losses, "none", 0.7), np.full(3, 1 / 3))


def test_torch_in_torch_out_same_dtype_detached():
    losses = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float32, requires_grad=True)
    q = worst_case_weights(losses * 2, "chi2", 0.2)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float32 and not q.requires_grad
    assert q.device == losses.device
    np.testing.assert_allclose(q.numpy(), worst_case_weights((losses * 2).detach().numpy(), "chi2", 0.2), rtol=1e-6)
    assert isinstance(worst_case_weights(np.array([1.0, 2.0]), "tv", 0.1), np.ndarray)


@pytest.mark.parametrize(
    ("losses", "divergence", "rho", "message"),
    [
        (np.array([]), "tv", 0.1, "non-empty"),
        (np.ones((2, 2)), "tv", 0.1, "1-D"),
        (np.array([1.0, np.nan]), "tv", 0.1, "finite"),
        (np.array([1.0, np.inf]), "chi2", 0.1, "finite"),
        (np.array([1.0, 2.0]), "tv", -0.1, "rho"),
        (np.array([1.0, 2.0]), "wasserstein", 0.1, "unknown divergence"),
        (np.array([1.0, 2.0]), "cvar", 1.5, "alpha"),
    ],
)
def test_bad_input_raises_clear_value_error(losses, divergence, rho, message):
    with pytest.raises(ValueError, match=message):
        worst_case_weights(losses, divergence, rho)


def test_weight_statistics():
    stats = weight_statistics(np.array([0.5, 0.5, 0.0, 0.0]))
    assert stats == {"max_weight": 0.5, "ess": 2.0, "frac_zero_weights": 0.5}
    with_losses = weight_statistics(np.array([0.5, 0.5, 0.0, 0.0]), np.array([3.0, 1.0, 0.0, 0.0]))
    assert list(with_losses) == [
        "robust_loss",
        "mean_loss",
        "max_weight",
        "ess",
        "frac_zero_weights",
    ]
    assert with_losses["robust_loss"] == 2.0 and with_losses["mean_loss"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        weight_statistics(np.array([0.5, 0.5]), np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    ("divergence", "rho", "message"),
    [
        ("tv", -0.1, "finite number >= 0"),
        ("kl", float("nan"), "finite number >= 0"),
        ("chi2", float("inf"), "finite number >= 0"),
        ("tv", "0.1", "real number"),
        ("cvar", 1.5, "alpha"),
        ("l2", 0.1, "unknown divergence"),
    ],
)
def test_check_radius_names_the_problem(divergence, rho, message):
    with pytest.raises(ValueError, match=message):
        check_radius(divergence, rho)


def test_check_radius_accepts_the_ball():
    assert check_radius("cvar", 1) == 1.0 and isinstance(check_radius("cvar", 1), float)
    assert check_radius("none", 0.0) == 0.0 and check_radius("kl", np.float64(3.5)) == 3.5


def test_all_gather_rows_without_process_group_is_the_identity():
    rows = torch.arange(6.0).reshape(3, 2).requires_grad_()
    full, offset = all_gather_rows(rows)
    assert offset == 0 and not full.requires_grad
    torch.testing.assert_close(full, rows.detach())


def test_gather_without_process_group_is_the_plain_solver():
    losses = torch.tensor([0.1, 0.9, 0.4, 0.4])
    torch.testing.assert_close(gather_worst_case_weights(losses, "tv", 0.2), worst_case_weights(losses, "tv", 0.2))


def _gather_worker(rank: int, world: int, init_file: str, chunks: list[list[float]], out: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for divergence, rho in (("tv", 0.3), ("chi2", 0.4), ("kl", 0.2), ("cvar", 0.5)):
            w = gather_worst_case_weights(torch.tensor(chunks[rank], dtype=torch.float64), divergence, rho)
            out[(rank, divergence)] = w.tolist()
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_get_their_slice_of_the_global_weights(tmp_path):
    import torch.multiprocessing as mp

    chunks = [[0.3, 1.7, 0.2], [2.5, 0.1, 0.9, 1.1]]  # unequal per-rank counts
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), chunks, out), nprocs=2, join=True)
    full = np.array(chunks[0] + chunks[1])
    for divergence, rho in (("tv", 0.3), ("chi2", 0.4), ("kl", 0.2), ("cvar", 0.5)):
        expected = worst_case_weights(full, divergence, rho)
        got = np.array(out[(0, divergence)] + out[(1, divergence)])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
