"""Log-linear policies over finite candidate sets (core.trainers.loglinear) and the rDPO loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.losses import dpo_sigmoid_loss, robust_dpo_loss
from core.trainers.loglinear import PolicyConfig, policy_probs, policy_value, train_policy


def test_rdpo_is_trls_robust_loss_and_unbiased_under_flips():
    h = torch.tensor([-2.0, 0.0, 1.5])
    eps, beta = 0.2, 0.5
    expected = (-(1 - eps) * torch.nn.functional.logsigmoid(beta * h)
                + eps * torch.nn.functional.logsigmoid(-beta * h)) / (1 - 2 * eps)  # fmt: skip
    torch.testing.assert_close(robust_dpo_loss(h, torch.zeros(3), beta, eps), expected)
    # its expectation over labels flipped with probability eps is the clean DPO loss
    flipped = (1 - eps) * robust_dpo_loss(h, torch.zeros(3), beta, eps) + eps * robust_dpo_loss(
        -h, torch.zeros(3), beta, eps
    )
    torch.testing.assert_close(flipped, dpo_sigmoid_loss(h, torch.zeros(3), beta))
    with pytest.raises(ValueError, match="eps"):
        robust_dpo_loss(h, h, beta, 0.5)


def test_probabilities_normalise_per_prompt_and_value_weights_rewards():
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    groups = np.array([0, 0, 1, 1])
    theta = np.array([2.0, 0.0])
    p = policy_probs(theta, feats, groups)
    assert p[:2].sum() == pytest.approx(1.0) and p[2:].sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(np.exp(2) / (np.exp(2) + 1))
    values = policy_value(theta, feats, groups, np.array([1.0, 0.0, 0.0, 1.0]))
    np.testing.assert_allclose(values, [p[0], p[3]])
    assert policy_value(np.zeros(2), feats, groups, np.array([1.0, 0.0, 0.0, 1.0])).tolist() == [0.5, 0.5]


def _pairs(n: int = 200, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    a, b = rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)
    swap = (a - b) @ w < 0
    a[swap], b[swap] = b[swap].copy(), a[swap].copy()
    return a, b, w


@pytest.mark.parametrize("method", ["dpo", "ipo", "cdpo", "rdpo"])
def test_every_method_learns_the_preference_direction(method):
    chosen, rejected, w = _pairs()
    res = train_policy(chosen, rejected, PolicyConfig(method=method, beta=1.0, steps=150), seed=0)
    assert np.mean(res.losses[-10:]) < np.mean(res.losses[:10])
    assert np.mean(((chosen - rejected) @ res.theta) > 0) > 0.9
    assert np.corrcoef(res.theta, w)[0, 1] > 0.8


def test_dr_dpo_weights_the_hard_pairs_and_is_seeded():
    chosen, rejected, _ = _pairs()
    plain = train_policy(chosen, rejected, PolicyConfig(steps=5), seed=1)
    robust = train_policy(chosen, rejected, PolicyConfig(steps=5, divergence="tv", rho=0.5), seed=1)
    # theta starts at 0 (every loss log 2, uniform weights): the second batch is the first the weights tilt
    assert robust.losses[0] == plain.losses[0] and robust.losses[1] > plain.losses[1]
    again = train_policy(chosen, rejected, PolicyConfig(steps=5, divergence="tv", rho=0.5), seed=1)
    np.testing.assert_array_equal(robust.theta, again.theta)
    with pytest.raises(ValueError, match="method"):
        PolicyConfig(method="kto")
