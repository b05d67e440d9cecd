"""Log-linear policies over finite candidate sets (core.trainers.loglinear) and the rDPO loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.losses import dpo_sigmoid_loss, robust_dpo_loss
from core.trainers.loglinear import (
    CandidateSets,
    PolicyConfig,
    policy_probs,
    policy_value,
    preferred_logratio,
    train_policy,
)


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


def _candidates(seed: int = 0, n_groups: int = 30, d: int = 6):
    """Flat candidates of ``n_groups`` instructions (3-7 each), and pairs (first vs last candidate)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 8, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    feats = rng.normal(size=(len(groups), d)).astype(np.float32)
    first = np.searchsorted(groups, np.arange(n_groups))
    last = first + sizes - 1
    return feats, groups, feats[first], feats[last], CandidateSets.from_groups(feats, groups, np.arange(n_groups))


def test_forward_kl_and_preferred_logratio_are_exact_over_the_candidates():
    feats, groups, chosen, _, sets = _candidates()
    theta = np.random.default_rng(1).normal(size=feats.shape[1]).astype(np.float32)
    probs = policy_probs(theta, feats, groups)
    sizes = np.bincount(groups)
    kl = np.array([np.mean(-np.log(probs[groups == g])) - np.log(sizes[g]) for g in range(len(sizes))])
    got = sets.forward_kl(torch.from_numpy(theta), torch.arange(len(sizes))).numpy()
    np.testing.assert_allclose(got, kl, rtol=1e-5, atol=1e-6)
    assert (got > 0).all() and np.allclose(sets.forward_kl(torch.zeros(feats.shape[1]), torch.arange(3)), 0, atol=1e-6)
    first = np.searchsorted(groups, np.arange(len(sizes)))
    np.testing.assert_allclose(preferred_logratio(theta, chosen, sets), np.log(probs[first] * sizes), rtol=1e-5)


def test_ddpo_fits_its_targets_and_edpo_of_equal_members_is_ddpo():
    chosen, rejected, w = _pairs()
    target = ((chosen - rejected) @ w)[:, None]
    beta = 0.5
    config = PolicyConfig(method="ddpo", beta=beta, steps=600, learning_rate=0.05)
    res = train_policy(chosen, rejected, config, seed=0, targets=target)
    # the distillation loss (t - beta h)^2 is minimised at theta = w / beta (the features span R^d)
    np.testing.assert_allclose(res.theta, w / beta, rtol=0.05, atol=0.05)
    same = train_policy(chosen, rejected, PolicyConfig(method="edpo", beta=beta, steps=600, learning_rate=0.05),
                        seed=0, targets=np.hstack([target, target]))  # fmt: skip
    np.testing.assert_array_equal(same.theta, res.theta)
    # at theta = 0 the members tie (the first wins); then the flipped member's loss is the larger: min_k keeps w
    mixed = train_policy(chosen, rejected, PolicyConfig(method="edpo", beta=beta, steps=600, learning_rate=0.05),
                         seed=0, targets=np.hstack([target, -target]))  # fmt: skip
    np.testing.assert_allclose(mixed.theta, w / beta, rtol=0.05, atol=0.05)


def test_pdpo_is_dpo_plus_gamma_kl():
    feats, groups, chosen, rejected, sets = _candidates(seed=2, n_groups=60)
    dpo = train_policy(chosen, rejected, PolicyConfig(method="dpo", beta=1.0, steps=200), seed=0)
    zero = train_policy(chosen, rejected, PolicyConfig(method="pdpo", beta=1.0, steps=200), seed=0,
                        candidate_sets=sets)  # fmt: skip
    np.testing.assert_array_equal(zero.theta, dpo.theta)
    strong = train_policy(chosen, rejected, PolicyConfig(method="pdpo", beta=1.0, gamma=1.0, steps=200), seed=0,
                          candidate_sets=sets)  # fmt: skip
    kl = lambda th: float(sets.forward_kl(torch.from_numpy(th), torch.arange(60)).mean())  # noqa: E731
    assert kl(strong.theta) < kl(dpo.theta)
    assert preferred_logratio(strong.theta, chosen, sets).mean() > preferred_logratio(dpo.theta, chosen, sets).mean()


@pytest.mark.parametrize(
    ("config", "kwargs", "message"),
    [
        (dict(method="ddpo"), {}, "ddpo: targets must be a finite"),
        (dict(method="ddpo"), {"targets": np.ones((200, 2))}, "distils one reward model"),
        (dict(method="edpo"), {"targets": np.full((200, 2), np.nan)}, "edpo: targets must be a finite"),
        (dict(method="pdpo", gamma=0.1), {}, "pdpo: candidate_sets must give"),
    ],
)
def test_distillation_inputs_are_checked(config, kwargs, message):
    chosen, rejected, _ = _pairs()
    with pytest.raises(ValueError, match=message):
        train_policy(chosen, rejected, PolicyConfig(**config, steps=2), seed=0, **kwargs)
    with pytest.raises(ValueError, match="gamma"):
        PolicyConfig(method="dpo", gamma=0.1)
