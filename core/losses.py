"""Per-example (unreduced) preference losses (docs/design.md §1.2-§1.3).

Every function returns one loss per example so that a robust trainer can reweight them with
``core.dro.worst_case_weights``; ``weighted_mean`` is the reduction.  Log-ratios are
``log pi(y|x) - log pi_ref(y|x)`` summed over completion tokens, as in trl 1.12.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "bradley_terry_loss",
    "distillation_loss",
    "dpo_sigmoid_loss",
    "ensemble_distillation_loss",
    "ensemble_member",
    "forward_kl_estimate",
    "ipo_loss",
    "robust_dpo_loss",
    "weighted_mean",
]


def bradley_terry_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """BTL reward-model loss ``-log sigma(r(x,y+) - r(x,y-) - margin)`` (Bradley-Terry, DR paper §2 /
    distillation paper eq. 2; trl's RewardTrainer)."""
    diff = chosen_rewards.reshape(-1) - rejected_rewards.reshape(-1)
    if margin is not None:
        diff = diff - margin.reshape(-1)
    return -F.logsigmoid(diff)


def dpo_sigmoid_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """DPO loss ``-log sigma(beta * (Delta logratio))`` (Rafailov et al. eq. 7; trl ``sigmoid``).

    With ``label_smoothing = eps`` it is the conservative mixture
    ``-(1-eps) log sigma(beta Delta) - eps log sigma(-beta Delta)``.
    """
    logits = beta * (chosen_logratios - rejected_logratios)
    loss = -F.logsigmoid(logits)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-logits)
    return loss


def robust_dpo_loss(
    chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float, eps: float
) -> torch.Tensor:
    """rDPO, the unbiased DPO loss under labels flipped with probability ``eps`` (Chowdhury et al.
    2024, eq. 7; trl's ``robust``): ``[(1-eps) l(beta Delta) - eps l(-beta Delta)] / (1 - 2 eps)``
    with ``l(z) = -log sigma(z)``."""
    if not 0 <= eps < 0.5:
        raise ValueError(f"rDPO needs 0 <= eps < 0.5, got {eps}")
    logits = beta * (chosen_logratios - rejected_logratios)
    return ((1.0 - eps) * -F.logsigmoid(logits) + eps * F.logsigmoid(-logits)) / (1.0 - 2.0 * eps)


def ipo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """IPO loss ``(Delta avg-logratio - 1/(2 tau))^2`` (Azar et al. eq. 17, trl 1.12's per-token averaged form).

    Log-ratios are divided by the completion token counts (clamped at 1); ``tau`` is trl's ``beta``.
    """
    chosen_avg = chosen_logratios / chosen_lengths.to(chosen_logratios.dtype).clamp(min=1.0)
    rejected_avg = rejected_logratios / rejected_lengths.to(rejected_logratios.dtype).clamp(min=1.0)
    return (chosen_avg - rejected_avg - 1.0 / (2.0 * tau)) ** 2


def distillation_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    target_chosen: torch.Tensor,
    target_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Reward distillation (distillation paper eq. 7): ``(r(x,y1) - r(x,y2) - beta Delta logratio)^2``."""
    target = (target_chosen - target_rejected).to(chosen_logratios.dtype)
    return (target - beta * (chosen_logratios - rejected_logratios)) ** 2


def forward_kl_estimate(policy_logps: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample estimate of ``KL(pi_ref || pi)`` up to a constant: ``-log pi(y|x)`` for ``y ~ pi_ref``.

    The pessimism term of p-DPO / dp-DPO / e-DPO (distillation paper eqs. 11 and 13): its
    gradient equals the gradient of the forward KL because ``E_{pi_ref} log pi_ref`` is constant
    in the policy.  With ``lengths`` the log-likelihood is per token (a documented variant).
    """
    out = -policy_logps
    if lengths is not None:
        out = out / lengths.to(policy_logps.dtype).clamp(min=1.0)
    return out


def ensemble_member(
    per_member: torch.Tensor | np.ndarray,
    weights: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray] | None = None,
) -> int:
    """e-DPO's ``min_k`` over the ensemble (distillation paper eq. 11), taken per minibatch (footnote 5).

    ``per_member`` holds the (detached) per-example losses, ``[n, K]``: one column per reward model.
    Returns the index ``k`` minimising the member's minibatch loss, ties going to the lowest index:

    * ``weights=None``: the mean ``(1/n) sum_i l_ik``;
    * ``weights`` a ``[n]`` vector: ``sum_i w_i l_ik``, the same weights for every member;
    * ``weights`` a sequence of ``K`` ``[n]`` vectors: ``sum_i q_ki l_ik`` with member ``k``'s own
      worst-case weights ``q_k`` (DR paper eq. 3), i.e. ``min_k max_q`` of the robust e-DPO.

    Works on numpy arrays and torch tensors alike.
    """
    if per_member.ndim != 2 or per_member.shape[1] == 0:
        raise ValueError(f"per-member losses must be [n, K] with K >= 1, got shape {tuple(per_member.shape)}")
    if weights is None:
        return int(per_member.mean(0).argmin())
    if isinstance(weights, (list, tuple)):
        if len(weights) != per_member.shape[1]:
            raise ValueError(f"{len(weights)} weight vectors for {per_member.shape[1]} ensemble members")
        robust = np.array([float(q @ per_member[:, k]) for k, q in enumerate(weights)])
        return int(np.argmin(robust))
    return int((weights[:, None] * per_member).sum(0).argmin())


def ensemble_distillation_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    targets_chosen: torch.Tensor,
    targets_rejected: torch.Tensor,
    beta: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """e-DPO's ``min_k L_distill(r_k, pi)`` over an ensemble (distillation paper eq. 11, footnote 5).

    ``targets_*`` are ``[n, K]``: one column per reward model; each column gives eq. 7's loss.
    The min is taken per minibatch on the (``weights``-)weighted mean loss (:func:`ensemble_member`);
    returns the per-example losses of the member that attains it and that member's index (a 0-d
    long tensor).
    """
    if targets_chosen.ndim != 2 or targets_chosen.shape != targets_rejected.shape:
        raise ValueError(
            "targets_chosen/targets_rejected must both be [n, K] with the same shape, got "
            f"{tuple(targets_chosen.shape)} and {tuple(targets_rejected.shape)}"
        )
    delta = beta * (chosen_logratios - rejected_logratios)
    target = (targets_chosen - targets_rejected).to(delta.dtype)
    per_member = (target - delta.unsqueeze(1)) ** 2  # [n, K]
    shared = None if weights is None else weights.detach().to(per_member.dtype)
    best = ensemble_member(per_member.detach(), shared)
    return per_member[:, best], torch.tensor(best, dtype=torch.long, device=per_member.device)


def weighted_mean(per_example: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_i q_i l_i`` (DR reweighting), or the plain mean when ``weights`` is ``None``.

    Uniform weights go through ``mean`` too, so the result is bit-identical to the non-robust loss.
    """
    if weights is None:
        return per_example.mean()
    if weights.shape != per_example.shape:
        raise ValueError(f"weights shape {tuple(weights.shape)} != losses shape {tuple(per_example.shape)}")
    w = weights.detach().to(per_example.dtype)
    n = per_example.numel()
    if n and bool(torch.all(w == w.reshape(-1)[0])) and torch.isclose(w.sum(), w.new_tensor(1.0)):
        return per_example.mean()
    return (w * per_example).sum()
