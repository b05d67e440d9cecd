"""Building blocks of DR-PPO (DR paper §5.2; docs/design.md §1.3) used by ``core.trainers.ppo``.

Tensor maths (per-token KL estimates, KL-shaped rewards, GAE, robust sample scales, clipped PPO
losses) and the small helpers of the checkpoints (RNG states, the resumable prompt stream).  The
masking/whitening helpers and the generation utilities are trl 1.12's and are imported there.

Notation: a rollout batch has ``n`` samples; sample ``i`` has response tokens ``t = 0..T-1``,
a reward-model score ``s_i`` and per-token log-probabilities under the policy ``pi`` and the
reference ``pi_ref``.  ``beta`` is trl's ``kl_coef``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

with warnings.catch_warnings():  # trl 1.12 warns on every first import of trl.experimental
    warnings.filterwarnings("ignore", message=".*trl.experimental.*")
    from trl.experimental.ppo.ppo_trainer import masked_mean

from core.dro import gather_worst_case_weights, weight_statistics

KL_ESTIMATORS: tuple[str, ...] = ("k1", "k3")


# --------------------------------------------------------------------------- rewards and GAE
def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` on the sampled tokens (Schulman, "Approximating KL").

    With ``log r = log pi_ref(y_t) - log pi(y_t)``: ``k1 = -log r`` and ``k3 = (r - 1) - log r``.
    Positions where both inputs hold the same filler value contribute exactly 0.
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator must be one of {list(KL_ESTIMATORS)}, got {estimator!r}")
    log_r = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_r
    return (torch.exp(log_r) - 1) - log_r


def shaped_token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, kl_coef: float, sequence_lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``r_{i,t} = -beta kl_{i,t} + [t = e_i] s_i`` (Ziegler et al. 2019, eq. 2).

    ``e_i = min(len_i + 1, T - 1)`` with ``len_i`` the index of the last response token: the score
    sits one position past it (inside trl 1.12's ``padding_mask_p1`` window), as in trl's PPO.
    Returns ``(rewards, non_score_rewards)``; ``rewards.sum(1)`` is the KL-regularised return.
    """
    non_score = -kl_coef * kl
    rewards = non_score.clone()
    last = rewards.shape[1] - 1
    end = torch.clamp(sequence_lengths + 1, max=last)
    rewards[torch.arange(rewards.shape[0], device=rewards.device), end] += scores
    return rewards, non_score


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eqs. 11-16).

    ``delta_t = r_t + gamma V_{t+1} - V_t`` (``V_T = 0``), ``A_t = delta_t + gamma lam A_{t+1}``;
    returns ``(A, A + V)`` (advantages and the value targets).
    """
    horizon = rewards.shape[1]
    advantages = torch.empty_like(rewards)
    running: torch.Tensor | float = 0.0
    for t in range(horizon - 1, -1, -1):
        next_value = values[:, t + 1] if t + 1 < horizon else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


# --------------------------------------------------------------------------- robust weights
@dataclass
class RobustWeights:
    """Worst-case weights of one rollout batch.

    ``local``: this rank's slice of ``q`` (sums to 1 over all ranks); ``all``: the global ``q``;
    ``scales``: ``n q_i`` for this rank's samples (``n`` the global batch), exactly 1 when ``q`` is
    uniform so that uniform weights reproduce plain PPO bit for bit.
    """

    local: torch.Tensor
    all: torch.Tensor
    scales: torch.Tensor

    @property
    def uniform(self) -> bool:
        return bool(torch.all(self.all == self.all[0]))

    def statistics(self) -> dict[str, float]:
        """``max_weight``, ``ess = 1 / sum q^2`` and ``frac_zero_weights`` of the global weights
        (``core.dro.weight_statistics``)."""
        return weight_statistics(self.all.detach().cpu().double().numpy())


def robust_weights(
    returns: torch.Tensor,
    divergence: str,
    rho: float,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> RobustWeights:
    """DR-PPO weights ``q* = argmin_{q: D(q, 1/n) <= rho} sum_i q_i R_i`` (DR paper §5.2).

    ``R_i`` is the KL-regularised return ``s_i - beta sum_t kl_{i,t}`` of sample ``i``.  The argmin
    of a value is the worst-case (argmax) weighting of its negation, so this calls
    ``core.dro.gather_worst_case_weights(-R)``: the set is the whole rollout batch over every
    data-parallel rank.  ``gather`` all-gathers this rank's weights (``accelerator.gather``);
    ``None`` means a single process.
    """
    if returns.ndim != 1:
        raise ValueError(f"returns must be a 1-D tensor (one per sample), got shape {tuple(returns.shape)}")
    if not torch.isfinite(returns).all():
        raise ValueError(
            f"non-finite KL-regularised returns {returns.tolist()}: the reward model or the policy "
            "log-probabilities produced nan/inf"
        )
    q_local = gather_worst_case_weights(-returns.detach().double(), divergence, rho)
    q_all = gather(q_local) if gather is not None else q_local
    n = q_all.numel()
    if bool(torch.all(q_all == q_all[0])):
        scales = torch.ones_like(returns)
    else:
        scales = (n * q_local).to(returns.dtype)
    return RobustWeights(local=q_local, all=q_all, scales=scales)


# --------------------------------------------------------------------------- clipped losses
@dataclass
class PolicyLoss:
    """Clipped surrogate of one micro-batch and its diagnostics."""

    loss: torch.Tensor
    log_ratio: torch.Tensor
    ratio: torch.Tensor
    clipfrac: torch.Tensor


def clipped_policy_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    sample_scales: torch.Tensor | None = None,
) -> PolicyLoss:
    """PPO clipped surrogate (Schulman et al. 2017, eq. 7), token mean over ``mask``.

    Per token ``max(-A rho_t, -A clip(rho_t, 1 - eps, 1 + eps))`` with ``rho_t = pi/pi_old``.
    DR-PPO vB multiplies every token term of sample ``i`` by ``sample_scales[i] = n q_i``.
    """
    log_ratio = new_logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    per_token = torch.max(unclipped, clipped)
    if sample_scales is not None:
        per_token = per_token * sample_scales.unsqueeze(1)
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).float(), mask)
    return PolicyLoss(masked_mean(per_token, mask), log_ratio, ratio, clipfrac)


def clipped_value_loss(
    vpred: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ``0.5 mean max((V - G)^2, (clip(V, V_old +- eps) - G)^2)``; returns (loss, clipfrac)."""
    vclipped = torch.clamp(vpred, old_values - cliprange_value, old_values + cliprange_value)
    loss_plain = torch.square(vpred - returns)
    loss_clipped = torch.square(vclipped - returns)
    loss = 0.5 * masked_mean(torch.max(loss_plain, loss_clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((loss_clipped > loss_plain).float(), mask)
    return loss, clipfrac


# --------------------------------------------------------------------------- RNG states
def capture_torch_rng(sampler_generator: torch.Generator | None = None) -> dict[str, Any]:
    """The global torch (and CUDA) RNG states, plus a data sampler's generator when it has one."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if sampler_generator is not None:
        state["sampler"] = sampler_generator.get_state()
    return state


def restore_torch_rng(state: dict[str, Any], sampler_generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_torch_rng`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if sampler_generator is not None and "sampler" in state:
        sampler_generator.set_state(state["sampler"])


def numpy_rng_to_tensors(rng: np.random.RandomState) -> dict[str, torch.Tensor]:
    """A legacy numpy ``RandomState`` as tensors, so it loads with ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = rng.get_state(legacy=True)
    if name != "MT19937":
        raise ValueError(f"unsupported numpy bit generator {name!r}")
    return {
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "meta": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "cached_gaussian": torch.tensor([cached], dtype=torch.float64),
    }


def numpy_rng_from_tensors(state: dict[str, torch.Tensor]) -> np.random.RandomState:
    """Inverse of :func:`numpy_rng_to_tensors`."""
    rng = np.random.RandomState()
    pos, has_gauss = (int(v) for v in state["meta"].tolist())
    keys = state["keys"].numpy().astype(np.uint32)
    rng.set_state(("MT19937", keys, pos, has_gauss, float(state["cached_gaussian"].item())))
    return rng


# --------------------------------------------------------------------------- data stream
class PromptStream:
    """Endless iterator over a (prepared) prompt dataloader, reshuffled on every pass, resumable.

    It records the global RNG state right before each pass draws its shuffle and how many batches
    of the pass it has handed out; :meth:`restore` replays the pass from that state, so a resumed
    run sees the same prompts in the same order as an uninterrupted one.  It consumes RNG exactly
    like ``while True: yield from dataloader`` (trl 1.12's loop), which keeps rollouts identical
    to trl's on the same seed.
    """

    def __init__(self, dataloader: Any) -> None:
        self.dataloader = dataloader
        self.pass_rng: dict[str, Any] | None = None
        self.consumed = 0
        self._it: Iterator[Any] | None = None

    @property
    def _sampler_generator(self) -> torch.Generator | None:
        return getattr(self.dataloader, "synchronized_generator", None)

    def __iter__(self) -> PromptStream:
        return self

    def __next__(self) -> Any:
        for _ in range(2):
            if self._it is None:
                self.pass_rng = capture_torch_rng(self._sampler_generator)
                self._it = iter(self.dataloader)
                self.consumed = 0
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                continue
            self.consumed += 1
            return batch
        raise ValueError("the prompt dataloader yields no batch: the dataset is smaller than one rollout batch")

    def state(self) -> dict[str, Any]:
        return {"pass_rng": self.pass_rng, "consumed": self.consumed}

    def restore(self, state: dict[str, Any]) -> None:
        """Re-open the recorded pass and skip the batches already used (global RNG left as found)."""
        self._it = None
        self.consumed = 0
        self.pass_rng = state["pass_rng"]
        if self.pass_rng is None:
            return
        current = capture_torch_rng()
        restore_torch_rng(self.pass_rng, self._sampler_generator)
        self._it = iter(self.dataloader)
        for _ in range(int(state["consumed"])):
            next(self._it)
        self.consumed = int(state["consumed"])
        restore_torch_rng(current)
