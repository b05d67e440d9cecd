"""Log-linear policies over finite candidate sets, trained by DPO, DR-DPO, IPO, cDPO and rDPO.

The policy class of the DR paper (Assumption 2, Alg. 3): ``pi_theta(y | x) ∝ exp(theta . psi(x, y))``
over each prompt's candidates ``Y(x)``, with ``pi_ref`` uniform (``theta_ref = 0``). The partition
function cancels within a prompt, so a pair's log-ratio difference is
``h = theta . (psi(x, y+) - psi(x, y-))`` and the per-example losses are core.losses' own:
DPO ``-log sigma(beta h)`` (cDPO: label smoothing eps), rDPO (``robust_dpo_loss``), IPO
``(h - 1/(2 tau))^2`` (one token per response). DR-DPO minimises ``sum_i q_i l_i`` with ``q`` the
worst-case weights of the minibatch in a TV or chi-square ball of radius rho (core.dro, DR paper
eq. 7). Optimiser: Adam on theta from 0, ``steps`` minibatches of ``batch_size`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["POLICY_METHODS", "PolicyConfig", "PolicyResult", "policy_probs", "policy_value", "train_policy"]

POLICY_METHODS = ("dpo", "ipo", "cdpo", "rdpo")


@dataclass(frozen=True)
class PolicyConfig:
    """One policy's loss, its temperature (``beta``; ``tau`` for IPO), the DR ball and the optimiser."""

    method: str = "dpo"
    beta: float = 0.1
    eps: float = 0.1  # cDPO's label smoothing, rDPO's flip rate
    divergence: str = "none"
    rho: float = 0.0
    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.method not in POLICY_METHODS:
            raise ValueError(f"policy method must be one of {POLICY_METHODS}, got {self.method!r}")
        if not self.beta > 0:
            raise ValueError(f"beta (tau for IPO) must be > 0, got {self.beta}")


@dataclass
class PolicyResult:
    theta: np.ndarray
    losses: list[float] = field(default_factory=list)


def _per_example(h, config: PolicyConfig):
    import torch

    from core.losses import dpo_sigmoid_loss, ipo_loss, robust_dpo_loss

    zero = torch.zeros_like(h)
    if config.method == "ipo":
        one = torch.ones_like(h)
        return ipo_loss(h, zero, one, one, config.beta)
    if config.method == "rdpo":
        return robust_dpo_loss(h, zero, config.beta, config.eps)
    smoothing = config.eps if config.method == "cdpo" else 0.0
    return dpo_sigmoid_loss(h, zero, config.beta, label_smoothing=smoothing)


def train_policy(chosen: np.ndarray, rejected: np.ndarray, config: PolicyConfig, seed: int) -> PolicyResult:
    """theta from the pairs' features ``chosen[i] = psi(x_i, y_i+)``, ``rejected[i] = psi(x_i, y_i-)``."""
    import torch

    from core.trainers.minibatch import robust_minibatch_descent

    if chosen.shape != rejected.shape or chosen.ndim != 2 or len(chosen) == 0:
        raise ValueError(f"chosen and rejected features must be equal (n, d) arrays: {chosen.shape}, {rejected.shape}")
    diff = torch.from_numpy(np.ascontiguousarray(chosen - rejected, dtype=np.float32))
    theta = torch.zeros(diff.shape[1], requires_grad=True)
    losses = robust_minibatch_descent(
        len(diff),
        lambda idx: _per_example(diff[idx] @ theta, config),
        torch.optim.Adam([theta], lr=config.learning_rate),
        steps=config.steps,
        batch_size=config.batch_size,
        divergence=config.divergence,
        rho=config.rho,
        seed=seed,
        what="train_policy",
    )
    return PolicyResult(theta.detach().numpy().copy(), losses)


def policy_probs(theta: np.ndarray, features: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``pi_theta(y | x)`` of every candidate (row of ``features``), normalised within its group (prompt)."""
    logits = features @ theta
    out = np.empty_like(logits, dtype=np.float64)
    for g in np.unique(groups):
        members = groups == g
        z = logits[members] - logits[members].max()
        out[members] = np.exp(z) / np.exp(z).sum()
    return out


def policy_value(theta: np.ndarray, features: np.ndarray, groups: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Per prompt, in sorted group order: ``V(x) = sum_y pi_theta(y | x) r*(x, y)``."""
    probs = policy_probs(theta, features, groups)
    return np.asarray([float((probs[groups == g] * rewards[groups == g]).sum()) for g in np.unique(groups)])
