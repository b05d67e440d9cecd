"""Log-linear policies over finite candidate sets: DPO, DR-DPO, IPO, cDPO, rDPO, d-, p- and e-DPO.

The policy class of the DR paper (Assumption 2, Alg. 3): ``pi_theta(y | x) ∝ exp(theta . psi(x, y))``
over each prompt's candidates ``Y(x)``, with ``pi_ref`` uniform (``theta_ref = 0``). The partition
function cancels within a prompt, so a pair's log-ratio difference is
``h = theta . (psi(x, y+) - psi(x, y-))`` and the per-example losses are core.losses' own:
DPO ``-log sigma(beta h)`` (cDPO: label smoothing eps), rDPO (``robust_dpo_loss``), IPO
``(h - 1/(2 tau))^2`` (one token per response). DR-DPO minimises ``sum_i q_i l_i`` with ``q`` the
worst-case weights of the minibatch in a TV or chi-square ball of radius rho (core.dro, DR paper
eq. 7). The distillation paper's losses: d-DPO ``(t_i - beta h)^2`` with ``t_i`` a reward model's
``r(x, y+) - r(x, y-)`` (eq. 7); p-DPO DPO + ``gamma KL(pi_ref || pi)`` (eq. 13); e-DPO the
ensemble's ``min_k`` distillation loss per minibatch + ``gamma KL`` (eq. 11). The forward KL is
exact over the candidates: ``KL(pi_ref || pi)(x) = mean_{y in Y(x)} -log pi(y | x) - log |Y(x)|``.
Optimiser: Adam on theta from 0, ``steps`` minibatches of ``batch_size`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "POLICY_METHODS",
    "CandidateSets",
    "PolicyConfig",
    "PolicyResult",
    "policy_probs",
    "policy_value",
    "preferred_logratio",
    "train_policy",
]

POLICY_METHODS = ("dpo", "ipo", "cdpo", "rdpo", "ddpo", "pdpo", "edpo")
DISTILLED = ("ddpo", "edpo")  # need reward-model targets
PESSIMISTIC = ("pdpo", "edpo")  # add gamma KL(pi_ref || pi)


@dataclass(frozen=True)
class PolicyConfig:
    """One policy's loss, its temperature (``beta``; ``tau`` for IPO), the DR ball and the optimiser."""

    method: str = "dpo"
    beta: float = 0.1
    eps: float = 0.1  # cDPO's label smoothing, rDPO's flip rate
    gamma: float = 0.0  # p-DPO's and e-DPO's forward-KL coefficient
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
        if self.gamma < 0 or (self.gamma > 0 and self.method not in PESSIMISTIC):
            raise ValueError(f"gamma must be >= 0 and used by {PESSIMISTIC} only, got {self.gamma} for {self.method}")


@dataclass
class CandidateSets:
    """The candidates ``Y(x)`` of each instruction, padded: ``features[g, c]`` = ``psi(x_g, y_c)``
    where ``mask[g, c]``, and ``group[i]`` the instruction of training pair ``i``."""

    features: np.ndarray  # [G, C, d]
    mask: np.ndarray  # [G, C] bool
    group: np.ndarray  # [n] int

    @classmethod
    def from_groups(cls, features: np.ndarray, groups: np.ndarray, pair_group: np.ndarray) -> CandidateSets:
        """From flat candidates (``features[j]`` of instruction ``groups[j]``, groups 0..G-1)."""
        n_groups = int(groups.max()) + 1
        counts = np.bincount(groups, minlength=n_groups)
        padded = np.zeros((n_groups, int(counts.max()), features.shape[1]), dtype=np.float32)
        mask = np.zeros(padded.shape[:2], dtype=bool)
        slot = np.zeros(n_groups, dtype=np.int64)
        for j, g in enumerate(groups):
            padded[g, slot[g]], mask[g, slot[g]] = features[j], True
            slot[g] += 1
        return cls(padded, mask, np.asarray(pair_group, dtype=np.int64))

    def forward_kl(self, theta: Any, idx: Any) -> Any:
        """``KL(pi_ref || pi_theta)`` at the instruction of each pair ``idx`` (a LongTensor),
        ``pi_ref`` uniform over ``Y(x)``: ``mean_y -log pi(y | x) - log |Y(x)|``."""
        import torch

        g = torch.as_tensor(self.group)[idx]
        valid = torch.as_tensor(self.mask)[g]
        logits = (torch.as_tensor(self.features)[g] @ theta).masked_fill(~valid, float("-inf"))
        logp = (logits - torch.logsumexp(logits, dim=1, keepdim=True)).masked_fill(~valid, 0.0)
        count = valid.sum(1).to(logp.dtype)
        return -(logp.sum(1) / count) - torch.log(count)


@dataclass
class PolicyResult:
    """theta, the loss of every step and, for e-DPO, the ensemble member its min took at every step."""

    theta: np.ndarray
    losses: list[float] = field(default_factory=list)
    members: list[int] = field(default_factory=list)


def _per_example(h, config: PolicyConfig, targets=None, members: list[int] | None = None):
    import torch

    from core.losses import distillation_loss, dpo_sigmoid_loss, ensemble_distillation_loss, ipo_loss, robust_dpo_loss

    zero = torch.zeros_like(h)
    if config.method == "ddpo":
        return distillation_loss(h, zero, targets[:, 0], torch.zeros_like(targets[:, 0]), config.beta)
    if config.method == "edpo":
        loss, member = ensemble_distillation_loss(h, zero, targets, torch.zeros_like(targets), config.beta)
        if members is not None:
            members.append(int(member))
        return loss
    if config.method == "ipo":
        one = torch.ones_like(h)
        return ipo_loss(h, zero, one, one, config.beta)
    if config.method == "rdpo":
        return robust_dpo_loss(h, zero, config.beta, config.eps)
    smoothing = config.eps if config.method == "cdpo" else 0.0
    return dpo_sigmoid_loss(h, zero, config.beta, label_smoothing=smoothing)


def train_policy(
    chosen: np.ndarray,
    rejected: np.ndarray,
    config: PolicyConfig,
    seed: int,
    *,
    targets: np.ndarray | None = None,
    candidate_sets: CandidateSets | None = None,
) -> PolicyResult:
    """theta from the pairs' features ``chosen[i] = psi(x_i, y_i+)``, ``rejected[i] = psi(x_i, y_i-)``;
    d-/e-DPO take ``targets[i, k] = r_k(x_i, y_i+) - r_k(x_i, y_i-)`` ((n, K), K = 1 for d-DPO);
    p-/e-DPO take the pairs' ``candidate_sets`` (the forward KL)."""
    import torch

    from core.trainers.minibatch import robust_minibatch_descent

    if chosen.shape != rejected.shape or chosen.ndim != 2 or len(chosen) == 0:
        raise ValueError(f"chosen and rejected features must be equal (n, d) arrays: {chosen.shape}, {rejected.shape}")
    if config.method in DISTILLED:
        if targets is None or targets.ndim != 2 or len(targets) != len(chosen) or not np.isfinite(targets).all():
            raise ValueError(f"{config.method}: targets must be a finite (n, K) array with n = {len(chosen)} pairs")
        if config.method == "ddpo" and targets.shape[1] != 1:
            raise ValueError(f"ddpo distils one reward model: targets must be (n, 1), got {targets.shape}")
    if config.gamma > 0 and (candidate_sets is None or len(candidate_sets.group) != len(chosen)):
        raise ValueError(f"{config.method}: candidate_sets must give the instruction of all {len(chosen)} pairs")
    diff = torch.from_numpy(np.ascontiguousarray(chosen - rejected, dtype=np.float32))
    tgt = None if targets is None else torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    theta = torch.zeros(diff.shape[1], requires_grad=True)
    members: list[int] = []

    def per_example(idx):
        loss = _per_example(diff[idx] @ theta, config, None if tgt is None else tgt[idx], members)
        if config.gamma > 0:
            loss = loss + config.gamma * candidate_sets.forward_kl(theta, idx)
        return loss

    losses = robust_minibatch_descent(
        len(diff),
        per_example,
        torch.optim.Adam([theta], lr=config.learning_rate),
        steps=config.steps,
        batch_size=config.batch_size,
        divergence=config.divergence,
        rho=config.rho,
        seed=seed,
        what="train_policy",
    )
    return PolicyResult(theta.detach().numpy().copy(), losses, members)


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


def preferred_logratio(theta: np.ndarray, chosen: np.ndarray, candidate_sets: CandidateSets) -> np.ndarray:
    """Per pair: ``log pi_theta(y+ | x) - log pi_ref(y+ | x)`` (the distillation paper's Fig. B.1
    quantity), ``chosen[i] = psi(x_i, y_i+)``, ``pi_ref`` uniform over the instruction's candidates."""
    import torch

    th = torch.from_numpy(np.asarray(theta, dtype=np.float32))
    g = torch.as_tensor(candidate_sets.group)
    mask = torch.as_tensor(candidate_sets.mask)[g]
    with torch.no_grad():
        logits = (torch.as_tensor(candidate_sets.features)[g] @ th).masked_fill(~mask, float("-inf"))
        own = torch.from_numpy(np.asarray(chosen, dtype=np.float32)) @ th
        return (own - torch.logsumexp(logits, dim=1) + torch.log(mask.sum(1).float())).numpy()
