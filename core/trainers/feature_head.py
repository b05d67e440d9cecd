"""A reward model's head trained on cached encoder states (DR paper Alg. 1 on a frozen encoder).

The model is BERT's sequence classifier ``r(x, y) = w . tanh(W h + b) + c`` with ``h`` the frozen
last-layer [CLS] state (core.eval.encoder_states). Each step draws a minibatch of pairs, computes the
Bradley-Terry losses ``l_i = -log sigma(r(x_i, y_i+) - r(x_i, y_i-))`` (core.losses) and minimises
``sum_i q_i l_i`` with ``q`` the worst-case weights in the TV or chi-square ball of radius rho
(core.dro; rho = 0 is BTL), by AdamW. The pooler starts from the checkpoint's, the output layer
from the seeded initialisation of ``core.models.load_reward_model``; :func:`save_head_model` writes
the whole classifier (encoder unchanged) as an ordinary model folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["HeadConfig", "HeadResult", "save_head_model", "train_head"]


@dataclass(frozen=True)
class HeadConfig:
    """Optimisation of the head: ``steps`` AdamW steps of ``batch_size`` pairs, cosine decay."""

    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    divergence: str = "none"
    rho: float = 0.0


@dataclass
class HeadResult:
    """The trained head's tensors (``pooler.dense.*``, ``classifier.*``) and its loss curve."""

    state: dict[str, Any]
    losses: list[float] = field(default_factory=list)


def _head_modules(model: Any) -> tuple[Any, Any]:
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is None or not hasattr(model, "classifier"):
        raise ValueError(f"{type(model).__name__}: expected a BERT-style classifier (a pooler and a classifier)")
    return pooler, model.classifier


def head_scores(model: Any, states: Any) -> Any:
    """``r = classifier(pooler(h))`` for a batch of [CLS] states (the model's own modules)."""
    pooler, classifier = _head_modules(model)
    return classifier(pooler.activation(pooler.dense(states))).squeeze(-1)


def train_head(model: Any, chosen: np.ndarray, rejected: np.ndarray, config: HeadConfig, seed: int) -> HeadResult:
    """Train ``model``'s pooler and output layer in place on pairs of cached states
    (``chosen[i]``, ``rejected[i]``: (n, d)); the encoder is not touched."""
    import torch

    from core.losses import bradley_terry_loss
    from core.trainers.minibatch import robust_minibatch_descent

    if chosen.shape != rejected.shape or chosen.ndim != 2 or len(chosen) == 0:
        raise ValueError(f"chosen and rejected states must be equal (n, d) arrays: {chosen.shape}, {rejected.shape}")
    pooler, classifier = _head_modules(model)
    params = [*pooler.parameters(), *classifier.parameters()]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.steps, 1))
    hc, hr = torch.from_numpy(np.ascontiguousarray(chosen)), torch.from_numpy(np.ascontiguousarray(rejected))
    model.train()
    losses = robust_minibatch_descent(
        len(hc),
        lambda idx: bradley_terry_loss(head_scores(model, hc[idx]), head_scores(model, hr[idx])),
        opt,
        steps=config.steps,
        batch_size=config.batch_size,
        divergence=config.divergence,
        rho=config.rho,
        seed=seed,
        scheduler=sched,
        what="train_head",
    )
    model.eval()
    head = ("classifier", "bert.pooler")
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(head)}
    return HeadResult(state, losses)


def save_head_model(model: Any, tokenizer: Any, out_dir: str | os.PathLike[str]) -> None:
    """Write ``model`` (encoder + trained head) and its tokenizer as one folder (safetensors), atomically;
    a model with a non-finite parameter is refused."""
    from core.atomic import atomic_directory
    from core.trainers.guards import raise_if_nonfinite_parameters

    raise_if_nonfinite_parameters(model, f"save_head_model({out_dir})")
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
