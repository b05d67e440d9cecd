"""core.losses: per-example losses, their reductions, and agreement with trl 1.12's DPOTrainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_llama, make_tiny_tokenizer

from core.losses import (
    bradley_terry_loss,
    distillation_loss,
    dpo_sigmoid_loss,
    ensemble_distillation_loss,
    ensemble_member,
    forward_kl_estimate,
    ipo_loss,
    weighted_mean,
)


def test_bradley_terry_is_negative_log_sigmoid_of_the_margin():
    rc, rr = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = torch.log1p(torch.exp(-(rc - rr)))
    torch.testing.assert_close(bradley_terry_loss(rc, rr), expected)
    torch.testing.assert_close(bradley_terry_loss(rc, rr, margin=torch.ones(3)), torch.log1p(torch.exp(-(rc - rr - 1))))


def test_distillation_loss_matches_eq7_and_is_symmetric_in_the_pair():
    lc, lr = torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.3])
    tc, tr = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.5])
    got = distillation_loss(lc, lr, tc, tr, beta=2.0)
    torch.testing.assert_close(got, ((tc - tr) - 2.0 * (lc - lr)) ** 2)
    torch.testing.assert_close(got, distillation_loss(lr, lc, tr, tc, beta=2.0))  # (y1, y2) order does not matter


def test_ensemble_loss_takes_the_member_with_the_smallest_batch_loss():
    lc, lr = torch.tensor([1.0, 0.0, 0.5]), torch.zeros(3)
    targets_c = torch.tensor([[0.0, 1.0, 5.0], [0.0, 0.0, 5.0], [0.0, 0.5, 5.0]])
    per, best = ensemble_distillation_loss(lc, lr, targets_c, torch.zeros(3, 3), beta=1.0)
    assert int(best) == 1  # member 1 matches the implicit reward exactly
    torch.testing.assert_close(per, torch.zeros(3))
    # weights can change which member attains the min
    w = torch.tensor([0.0, 1.0, 0.0])
    _, best_w = ensemble_distillation_loss(lc, lr, targets_c, torch.zeros(3, 3), beta=1.0, weights=w)
    assert int(best_w) in (0, 1)  # example 1 has implicit reward 0: members 0 and 1 both fit it
    with pytest.raises(ValueError, match=r"\[n, K\]"):
        ensemble_distillation_loss(lc, lr, torch.zeros(3), torch.zeros(3), beta=1.0)


def test_ensemble_member_is_the_argmin_of_the_minibatch_loss():
    losses = torch.tensor([[0.0, 1.0], [0.0, 1.0], [3.0, 1.4]])
    assert ensemble_member(losses) == 0  # mean: 1.0 vs 1.13
    assert ensemble_member(losses.numpy()) == 0
    assert ensemble_member(losses, torch.tensor([0.0, 0.0, 1.0])) == 1  # shared weights
    # one weight vector per member (each member's own worst-case weights)
    per_member = [np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])]
    assert ensemble_member(losses.double().numpy(), per_member) == 1  # 3.0 vs 1.0
    assert ensemble_member(torch.ones(3, 2)) == 0  # ties -> lowest index
    with pytest.raises(ValueError, match=r"\[n, K\]"):
        ensemble_member(torch.ones(3))
    with pytest.raises(ValueError, match="2 ensemble members"):
        ensemble_member(losses.numpy(), per_member[:1])


def test_forward_kl_estimate_is_negative_log_likelihood():
    logps = torch.tensor([-3.0, -8.0])
    torch.testing.assert_close(forward_kl_estimate(logps), torch.tensor([3.0, 8.0]))
    torch.testing.assert_close(forward_kl_estimate(logps, torch.tensor([3, 4])), torch.tensor([1.0, 2.0]))


def test_weighted_mean_is_exactly_the_mean_for_uniform_weights():
    x = torch.randn(7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(weighted_mean(x), x.mean())
    assert torch.equal(weighted_mean(x, torch.full((7,), 1 / 7)), x.mean())
    w = torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0])
    torch.testing.assert_close(weighted_mean(x, w), (x[0] + x[1]) / 2)
    with pytest.raises(ValueError, match="shape"):
        weighted_mean(x, torch.ones(3))


def _completion_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs and completion lengths, from the model's logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["input_ids"][:, 1:]
    mask = batch["completion_mask"][:, 1:].to(logits.dtype)
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(-1), mask.sum(-1)


@pytest.mark.parametrize("loss_type", ["dpo", "ipo"])
def test_dpo_and_ipo_match_trl_dpo_trainer(tmp_path, loss_type):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from core.trainers.dpo import trl_loss_types

    tok = make_tiny_tokenizer()
    model, ref = make_tiny_llama(tok, seed=1), make_tiny_llama(tok, seed=2)
    rows = {
        "prompt": ["what is two plus two", "hello how are you", "is the sun red", "help me please"],
        "chosen": ["four", "good thanks", "no it is not red", "sure here is help"],
        "rejected": ["five five", "bad", "yes", "no"],
    }
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        loss_type=trl_loss_types([loss_type]),
        beta=0.3,
        report_to="none",
        max_length=64,
        use_cpu=True,
        seed=0,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=Dataset.from_dict(rows),
        processing_class=tok,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch)
        logps, lengths = _completion_logps(trainer.model, batch)
        ref_logps, _ = _completion_logps(trainer.ref_model, batch)
    ratios = logps - ref_logps
    chosen, rejected = ratios.chunk(2)
    len_c, len_r = lengths.chunk(2)
    if loss_type == "dpo":
        ours = dpo_sigmoid_loss(chosen, rejected, beta=0.3)
    else:
        ours = ipo_loss(chosen, rejected, len_c, len_r, tau=0.3)
    assert ours.shape == (4,)
    torch.testing.assert_close(weighted_mean(ours), trl_loss, rtol=1e-5, atol=1e-6)
