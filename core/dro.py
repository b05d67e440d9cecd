"""Worst-case minibatch weights for distributionally robust training (docs/design.md §1.1).

Every robust method of the DR paper replaces the minibatch mean ``(1/n) sum_i l_i`` by
``sum_i q*_i l_i`` with

    q* = argmax_{q in simplex, D(q, uniform) <= rho}  sum_i q_i l_i            (DR paper, eq. 3 / Alg. 1 l.4)

computed on *detached* losses and held constant in the backward pass (Danskin), so the gradient
is ``sum_i q*_i grad l_i``.  Divergences (``phi`` applied to ``n q_i``):

* ``tv``   ``D = 1/2 sum_i |q_i - 1/n|``: exact, move ``m = min(rho, 1 - 1/n)`` mass from the
  smallest losses onto the largest.
* ``chi2`` ``D = (n/2) sum_i (q_i - 1/n)^2 = (1/2n) sum_i (n q_i - 1)^2`` (fast-dro's
  normalisation): exact, ``q_i ∝ (l_i - eta)_+`` with ``eta`` solved in closed form on each
  candidate active set of the sorted losses.
* ``kl``   ``D = sum_i q_i log(n q_i)``: ``q ∝ exp(l_i / tau)``, ``1/tau`` by bisection to
  machine precision (no closed form exists).
* ``cvar`` ``q_i <= 1 / (alpha n)`` with ``alpha = rho`` in ``(0, 1]``; ``rho = 0`` is the
  non-robust convention (uniform weights), as for every divergence.
* ``none`` uniform weights.

Tie rule: the weights depend only on the loss *values* — equal losses always get equal weights —
so the result is permutation-equivariant and independent of the input order.

All solvers are invariant to a positive affine map of the losses, so they work on
``(l - max l) / (max l - min l)`` internally; this keeps them exact for losses from 1e-8 to 1e6.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from core.vocab import DIVERGENCES

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DIVERGENCES",
    "all_gather_rows",
    "check_radius",
    "gather_worst_case_weights",
    "weight_statistics",
    "worst_case_weights",
    "worst_case_weights_cvxpy",
]


# --------------------------------------------------------------------------- input handling
def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def check_radius(divergence: str, rho: float) -> float:
    """The one check of a ball's radius (eq. 3's ``D(q, 1/n) <= rho``); returns ``float(rho)``.

    ``divergence`` must be one of :data:`DIVERGENCES` and ``rho`` a finite real number ``>= 0``;
    for ``cvar`` it is ``alpha`` and must also be ``<= 1``.  Raises ``ValueError`` naming the problem.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; expected one of {list(DIVERGENCES)}")
    if not isinstance(rho, numbers.Real):
        raise ValueError(f"rho must be a real number, got {rho!r}")
    rho_f = float(rho)
    if not math.isfinite(rho_f) or rho_f < 0:
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
    if divergence == "cvar" and rho_f > 1:
        raise ValueError(f"for divergence 'cvar' rho is alpha and must lie in [0, 1], got {rho!r}")
    return rho_f


def _validate(losses: Any, divergence: str, rho: float) -> np.ndarray:
    """Return the losses as a float64 numpy vector, raising ``ValueError`` on bad input."""
    check_radius(divergence, rho)
    if _is_torch(losses):
        arr = losses.detach().to("cpu").double().numpy()
    else:
        arr = np.asarray(losses, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"losses must be a 1-D vector, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError("losses must be non-empty")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"losses must be finite; index {bad} is {arr[bad]!r}")
    return arr


def _as_input_kind(weights: np.ndarray, like: Any) -> Any:
    if _is_torch(like):
        import torch

        return torch.as_tensor(weights, dtype=like.dtype, device=like.device).detach()
    dtype = like.dtype if isinstance(like, np.ndarray) and like.dtype.kind == "f" else np.float64
    return weights.astype(dtype, copy=False)


def _normalise(losses: np.ndarray) -> np.ndarray | None:
    """Map losses affinely onto ``[-1, 0]`` (max -> 0); ``None`` when all losses are equal."""
    hi, lo = losses.max(), losses.min()
    spread = hi - lo
    if not spread > 0:
        return None
    return (losses - hi) / spread


def _tie_average_sorted(s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Give every tie group of the sorted losses ``s`` its mean weight (the documented tie rule).

    Averaging over a permutation-symmetric convex ball keeps feasibility and the objective,
    and makes the answer independent of input order.
    """
    same = s[1:] == s[:-1]
    if not same.any():
        return q
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    counts = np.diff(np.append(starts, s.size))
    return np.repeat(np.add.reduceat(q, starts) / counts, counts)


# --------------------------------------------------------------------------- exact solvers
# Each solver takes the normalised losses sorted ascending (max = 0, min = -1) and returns the
# weights in that order.
def _tv_weights(s: np.ndarray, rho: float) -> np.ndarray:
    """TV ball: take ``m = min(rho, 1 - 1/n)`` mass off the smallest losses, put it on the max."""
    n = s.size
    k = n - int(np.searchsorted(s, s[-1], side="left"))  # size of the top tie group
    # Mass can only usefully come from non-maximal entries: at most (n - k)/n of it.
    m = min(rho, (n - k) / n)
    q = np.full(n, 1.0 / n)
    emptied = min(int(m * n), n - k)  # entries that lose all their mass
    q[:emptied] = 0.0
    if emptied < n - k:
        q[emptied] = max(0.0, (emptied + 1) / n - m)  # the boundary entry keeps what is left
    q[n - k :] = 1.0 / n + m / k
    return q


def _chi2_weights(s: np.ndarray, rho: float) -> np.ndarray:
    """Chi-square ball: ``q ∝ (l - eta)_+`` with ``sum q^2 = (2 rho + 1)/n`` solved exactly.

    For an active set of the top-``k`` losses (mean ``mu``, centred sum of squares ``V``) the
    constraint gives ``u = sum_i (l_i - eta) = sqrt(V / (c - 1/k))`` with ``c = (2 rho + 1)/n``,
    hence ``eta = mu - u/k``; the right ``k`` is the one whose ``eta`` lies in
    ``[l_(k+1), l_(k))`` (the feasible ``eta`` is unique because ``sum q^2`` grows with ``eta``).
    """
    n = s.size
    c = (2.0 * rho + 1.0) / n
    d = s[::-1]  # descending
    k_top = n - int(np.searchsorted(s, s[-1], side="left"))
    if c >= 1.0 / k_top:  # the ball contains the uniform distribution on the maxima
        q = np.zeros(n)
        q[n - k_top :] = 1.0 / k_top
        return q
    ks = np.arange(1, n + 1, dtype=np.float64)
    csum = np.cumsum(d)
    mu = csum / ks
    var_sum = np.maximum(np.cumsum(d * d) - csum * mu, 0.0)  # values lie in [-1, 0]: no cancellation blow-up
    nxt = np.append(d[1:], -np.inf)
    # active sets must end at a tie-group boundary, and need c > 1/k
    candidates = np.flatnonzero((d > nxt) & (c > 1.0 / ks))  # never empty: k = n qualifies
    kc = candidates + 1.0
    etas = mu[candidates] - np.sqrt(var_sum[candidates] / (c - 1.0 / kc)) / kc
    violation = np.maximum(0.0, np.maximum(nxt[candidates] - etas, etas - d[candidates]))
    feasible = np.flatnonzero(violation == 0.0)
    pick = feasible[0] if feasible.size else int(np.argmin(violation))
    best_k = int(candidates[pick]) + 1
    # recompute eta for the chosen active set with a two-pass centred sum (exact up to rounding)
    active = d[:best_k]
    mu_k = active.mean()
    v_k = float(np.dot(active - mu_k, active - mu_k))
    eta = mu_k - math.sqrt(v_k / (c - 1.0 / best_k)) / best_k
    q = np.maximum(s - eta, 0.0)
    return q / q.sum()


def _kl_weights(s: np.ndarray, rho: float) -> np.ndarray:
    """KL ball: ``q ∝ exp(l / tau)``; ``1/tau`` by bisection until the interval stops shrinking."""
    n = s.size
    k = n - int(np.searchsorted(s, s[-1], side="left"))
    if rho >= math.log(n / k):
        q = np.zeros(n)
        q[n - k :] = 1.0 / k
        return q

    def kl_at(beta: float) -> tuple[float, np.ndarray]:
        p = np.exp(beta * s)  # s <= 0 with max 0: no overflow
        p /= p.sum()
        pos = p > 0
        return float(np.dot(p[pos], np.log(n * p[pos]))), p

    lo, hi = 0.0, 1.0
    while kl_at(hi)[0] < rho and hi < 1e300:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if kl_at(mid)[0] <= rho:
            lo = mid
        else:
            hi = mid
    return kl_at(lo)[1]


def _cvar_weights(s: np.ndarray, alpha: float) -> np.ndarray:
    """CVaR_alpha: ``q_i <= 1/(alpha n)``; fill the largest losses up to the cap."""
    n = s.size
    cap = 1.0 / (alpha * n)
    return np.clip(1.0 - cap * np.arange(n), 0.0, cap)[::-1].copy()


_SOLVERS = {"tv": _tv_weights, "chi2": _chi2_weights, "kl": _kl_weights, "cvar": _cvar_weights}


def worst_case_weights(losses: Any, divergence: str, rho: float) -> Any:
    """Weights ``q* = argmax_{q in simplex, D(q, 1/n) <= rho} sum_i q_i l_i`` (docs/design.md §1.1).

    ``losses``: 1-D numpy array or torch tensor (detached for the solve); the result has the
    same kind (torch: same device and dtype, no grad).  ``rho = 0`` or ``divergence = "none"``
    gives uniform weights; for ``cvar`` ``rho`` is ``alpha``.  Equal losses get equal weights.
    """
    arr = _validate(losses, divergence, rho)
    n = arr.size
    rho = float(rho)
    if divergence == "none" or rho == 0.0:
        return _as_input_kind(np.full(n, 1.0 / n), losses)
    order = np.argsort(arr, kind="stable")
    s = arr[order]
    spread = s[-1] - s[0]
    if not spread > 0:
        return _as_input_kind(np.full(n, 1.0 / n), losses)
    s = (s - s[-1]) / spread  # affine map onto [-1, 0]; the argmax is invariant to it
    q_sorted = _tie_average_sorted(s, np.maximum(_SOLVERS[divergence](s, rho), 0.0))
    q = np.empty(n)
    q[order] = q_sorted / q_sorted.sum()
    return _as_input_kind(q, losses)


# --------------------------------------------------------------------------- diagnostics
def weight_statistics(weights: Any, losses: Any = None) -> dict[str, float]:
    """Per-step diagnostics of the weights ``q`` (eq. 3's ``q*``) and, with ``losses``, of the objective.

    ``robust_loss = sum_i q_i l_i`` and ``mean_loss = (1/n) sum_i l_i`` (only with ``losses``), then
    ``max_weight = max_i q_i``, the effective sample size ``ess = 1 / sum_i q_i^2`` and
    ``frac_zero_weights``, the fraction of examples with ``q_i <= 0``.  These are the keys of the
    robust trainers' ``robust_history`` records and ``dr/`` metrics.
    """
    q = _validate(weights, "none", 0.0)
    out: dict[str, float] = {}
    if losses is not None:
        values = _validate(losses, "none", 0.0)
        if values.shape != q.shape:
            raise ValueError(f"losses shape {values.shape} != weights shape {q.shape}")
        out["robust_loss"] = float(q @ values)
        out["mean_loss"] = float(values.mean())
    out["max_weight"] = float(q.max())
    out["ess"] = float(1.0 / (q @ q))
    out["frac_zero_weights"] = float(np.count_nonzero(q <= 0.0)) / q.shape[0]
    return out


# --------------------------------------------------------------------------- cvxpy reference
def worst_case_weights_cvxpy(losses: Any, divergence: str, rho: float, solver: str | None = None) -> np.ndarray:
    """Reference solution of the same problem with cvxpy (tests and benchmarks only).

    Solved on the affinely normalised losses (the argmax is invariant to that map).  Returns the
    solver's raw solution (it may lie ~1e-8 outside the ball); ``none``/``rho = 0`` give uniform.
    """
    import cvxpy as cp

    arr = _validate(losses, divergence, rho)
    n = arr.size
    rho = float(rho)
    if divergence == "none" or rho == 0.0:
        return np.full(n, 1.0 / n)
    normed = _normalise(arr)
    if normed is None:
        return np.full(n, 1.0 / n)
    q = cp.Variable(n)
    cons = [q >= 0, cp.sum(q) == 1]
    if divergence == "tv":
        cons.append(0.5 * cp.norm1(q - 1.0 / n) <= rho)
    elif divergence == "chi2":
        cons.append(0.5 * n * cp.sum_squares(q - 1.0 / n) <= rho)
    elif divergence == "kl":
        cons.append(cp.sum(cp.rel_entr(q, np.full(n, 1.0 / n))) <= rho)
    elif divergence == "cvar":
        cons.append(q <= 1.0 / (rho * n))
    problem = cp.Problem(cp.Maximize(normed @ q), cons)
    try:
        problem.solve(solver=solver)
    except cp.error.SolverError:
        if solver is not None:
            raise
        # Clarabel occasionally stalls on the exponential cone (kl); SCS is the documented fallback.
        problem.solve(solver="SCS", eps=1e-10, max_iters=200_000)
    if q.value is None:
        raise RuntimeError(f"cvxpy failed on the {divergence} problem: status {problem.status}")
    out = np.asarray(q.value, dtype=np.float64).reshape(-1)
    worst_case_weights_cvxpy.last_status = problem.status  # type: ignore[attr-defined]
    return out


# --------------------------------------------------------------------------- data parallel
def all_gather_rows(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``local`` (rows = examples) over the data-parallel ranks in rank order.

    Ranks may hold different row counts: the counts are all-gathered first, every rank's rows are
    zero-padded to the largest count for ``torch.distributed.all_gather`` and the padding is cut
    off again.  Returns the detached global tensor and the row offset of this rank's slice.
    Without an initialised process group (or with one rank) it is the identity (offset 0).
    """
    import torch
    import torch.distributed as dist

    local = local.detach()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    count = torch.tensor([local.shape[0]], device=local.device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: local.shape[0]] = local
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    full = torch.cat([g[:s] for g, s in zip(gathered, sizes, strict=True)])
    return full, sum(sizes[:rank])


def gather_worst_case_weights(local_losses: torch.Tensor, divergence: str, rho: float) -> torch.Tensor:
    """This rank's slice of the worst-case weights (eq. 3) of the *global* batch.

    The detached per-example losses of every data-parallel rank are concatenated in rank order
    (:func:`all_gather_rows`; ranks may hold different counts), the weights are solved once on
    the concatenation, and each rank keeps its own slice.  The slices sum to 1 over all ranks.
    Without an initialised process group this is ``worst_case_weights``.
    """
    local = local_losses.detach()
    if local.ndim != 1:
        raise ValueError(f"local_losses must be a 1-D tensor, got shape {tuple(local.shape)}")
    full, offset = all_gather_rows(local)
    weights = worst_case_weights(full, divergence, rho)
    return weights[offset : offset + local.shape[0]]
