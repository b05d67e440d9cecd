"""DR-PPO (core.trainers.ppo): agreement with trl 1.12's PPOTrainer, robust variants, learning,
seeding, checkpoint/resume, NaN stop and per-update logging -- on tiny random Llama models."""

from __future__ import annotations

import copy
import glob
import os
import types

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn

from core.trainers.guards import NonFiniteError
from core.trainers.ppo import DRPPOConfig, DRPPOTrainer, tokenize_prompts
from core.trainers.ppo_utils import (
    PromptStream,
    capture_torch_rng,
    clipped_policy_loss,
    gae,
    kl_estimate,
    numpy_rng_from_tensors,
    numpy_rng_to_tensors,
    robust_weights,
    shaped_token_rewards,
)

torch.set_num_threads(1)

WORDS = [f"w{i}" for i in range(16)]
TARGET = "w3"


# ---------------------------------------------------------------------------- tiny fixtures
def make_tokenizer():
    """Word-level tokenizer over 16 words plus specials, padding on the left (prompts are generated from)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        padding_side="left",
    )


def make_llama(tok, seed: int, classifier: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        num_labels=1,
        tie_word_embeddings=False,
    )
    return LlamaForSequenceClassification(cfg) if classifier else LlamaForCausalLM(cfg)


def make_prompts(tok, n: int, seed: int = 0, exclude: tuple[str, ...] = ()) -> Dataset:
    rng = np.random.default_rng(seed)
    pool = [w for w in WORDS if w not in exclude]
    texts = [" ".join(rng.choice(pool, size=int(rng.integers(2, 5)))) for _ in range(n)]
    return tokenize_prompts(Dataset.from_dict({"prompt": texts}), tok)


class _TargetCounter(nn.Module):
    def __init__(self, target_id: int) -> None:
        super().__init__()
        self.target_id = target_id

    def forward(self, input_ids, attention_mask, **_):
        hits = ((input_ids == self.target_id) & attention_mask.bool()).float()
        return types.SimpleNamespace(hidden_states=(hits.cumsum(1).unsqueeze(-1),))


class TargetFractionReward(nn.Module):
    """Reward = (# target tokens in the sequence) / response_length, read at the last token.

    Follows trl's ``get_reward`` protocol (``base_model_prefix`` backbone + ``score`` head); the
    prompts never contain the target, so this is the target's share of the response.
    """

    base_model_prefix = "backbone"

    def __init__(self, target_id: int, response_length: int) -> None:
        super().__init__()
        self.backbone = _TargetCounter(target_id)
        self.score = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.score.weight.fill_(1.0 / response_length)


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def initial(tok):
    """Initial policy, value and (random) reward model shared by the runs below (deep-copied per run)."""
    return {
        "policy": make_llama(tok, 0),
        "value": make_llama(tok, 1, True),
        "reward": make_llama(tok, 2, True),
    }


BASE = dict(
    per_device_train_batch_size=8,
    num_mini_batches=2,
    num_ppo_epochs=2,
    response_length=5,
    learning_rate=1e-2,
    seed=7,
    bf16=False,
    report_to="none",
    save_strategy="no",
    disable_tqdm=True,
    stop_token="eos",
    missing_eos_penalty=1.0,
    local_rollout_forward_batch_size=8,
)


def run(
    tmp_path,
    tok,
    initial,
    dataset,
    updates: int,
    reward=None,
    callbacks=None,
    resume=None,
    throughput=None,
    **overrides,
):
    """Train DR-PPO from deep copies of the initial models; returns the trainer."""
    cfg = {**BASE, **overrides}
    cfg.setdefault("output_dir", str(tmp_path / "out"))
    args = DRPPOConfig(total_episodes=updates * cfg["per_device_train_batch_size"], **cfg)
    policy = copy.deepcopy(initial["policy"])
    trainer = DRPPOTrainer(
        args=args,
        processing_class=tok,
        model=policy,
        ref_model=copy.deepcopy(policy),
        reward_model=reward if reward is not None else copy.deepcopy(initial["reward"]),
        train_dataset=dataset,
        value_model=copy.deepcopy(initial["value"]),
        callbacks=callbacks,
    )
    if throughput is not None:
        trainer.throughput = throughput
        trainer.add_callback(throughput)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def weights(trainer) -> dict[str, torch.Tensor]:
    return {
        **{f"policy.{k}": v.detach().clone() for k, v in trainer.policy_model.named_parameters()},
        **{f"value.{k}": v.detach().clone() for k, v in trainer.value_model.named_parameters()},
    }


def assert_equal_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"parameters differ: {different[:5]}"


def max_abs_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


# ---------------------------------------------------------------------------- building blocks
def test_gae_matches_discounted_sums():
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    gamma, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, gamma, lam)
    nxt = torch.cat([values[:, 1:], torch.zeros(3, 1)], 1)
    delta = rewards + gamma * nxt - values
    expected = torch.stack([sum((gamma * lam) ** (k - t) * delta[:, k] for k in range(t, 6)) for t in range(6)], 1)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_shaped_rewards_put_score_after_last_token_and_sum_to_regularised_return():
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.0], [0.5, 0.5, 0.5, 0.5]])
    scores = torch.tensor([2.0, -1.0])
    lengths = torch.tensor([1, 3])  # sample 0 ends at token 1, sample 1 fills the window
    rewards, non_score = shaped_token_rewards(scores, kl, 0.1, lengths)
    torch.testing.assert_close(non_score, -0.1 * kl)
    assert rewards[0, 2] == pytest.approx(2.0 - 0.03)  # score at len + 1
    assert rewards[1, 3] == pytest.approx(-1.0 - 0.05)  # clamped to the last position
    torch.testing.assert_close(rewards.sum(1), scores - 0.1 * kl.sum(1))


def test_kl_estimators():
    logp = torch.tensor([-1.0, -2.0, 1.0])
    ref = torch.tensor([-1.5, -1.0, 1.0])  # last position: filler value in both -> 0
    torch.testing.assert_close(kl_estimate(logp, ref, "k1"), torch.tensor([0.5, -1.0, 0.0]))
    log_r = ref - logp
    torch.testing.assert_close(kl_estimate(logp, ref, "k3"), log_r.exp() - 1 - log_r)
    assert kl_estimate(logp, ref, "k3").min() >= 0
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_estimate(logp, ref, "k2")


def test_robust_weights_move_mass_to_lowest_return():
    returns = torch.tensor([3.0, -1.0, 2.0, 0.5])
    w = robust_weights(returns, "tv", 0.25)
    # TV: 0.25 mass leaves the highest return (down to 0) and goes to the lowest.
    torch.testing.assert_close(w.local, torch.tensor([0.0, 0.5, 0.25, 0.25], dtype=torch.float64))
    torch.testing.assert_close(w.scales, torch.tensor([0.0, 2.0, 1.0, 1.0]))
    stats = w.statistics()
    assert stats["max_weight"] == pytest.approx(0.5)
    assert stats["frac_zero_weights"] == pytest.approx(0.25)
    assert stats["ess"] == pytest.approx(1 / (0.25 + 2 * 0.0625))
    chi2 = robust_weights(returns, "chi2", 0.1).local
    assert int(chi2.argmax()) == 1 and float(chi2[1]) > 0.25


@pytest.mark.parametrize("divergence,rho", [("none", 0.0), ("tv", 0.0), ("chi2", 0.0), ("kl", 0.0)])
def test_uniform_weights_give_scales_of_exactly_one(divergence, rho):
    returns = torch.randn(49, generator=torch.Generator().manual_seed(0))  # 49 * (1/49) != 1 in floats
    w = robust_weights(returns, divergence, rho)
    assert w.uniform
    assert torch.equal(w.scales, torch.ones(49))


def test_robust_weights_reject_non_finite_returns():
    with pytest.raises(ValueError, match="non-finite"):
        robust_weights(torch.tensor([1.0, float("nan")]), "tv", 0.1)


def test_clipped_policy_loss_scales_each_sample():
    torch.manual_seed(1)
    new, old, adv = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]).bool()
    scales = torch.tensor([0.0, 2.5, 0.5])
    ratio = (new - old).exp()
    per_token = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2))
    expected = (per_token * scales[:, None] * mask).sum() / mask.sum()
    torch.testing.assert_close(clipped_policy_loss(new, old, adv, mask, 0.2, scales).loss, expected)
    plain = clipped_policy_loss(new, old, adv, mask, 0.2).loss
    assert torch.equal(clipped_policy_loss(new, old, adv, mask, 0.2, torch.ones(3)).loss, plain)
    # positive homogeneity: scaled advantages == scaled loss (why vA scales before whitening)
    scaled_adv = clipped_policy_loss(new, old, adv * scales[:, None], mask, 0.2).loss
    torch.testing.assert_close(scaled_adv, expected)


def test_numpy_rng_state_roundtrips_through_weights_only_load(tmp_path):
    rng = np.random.RandomState(5)
    rng.permutation(10)
    torch.save(numpy_rng_to_tensors(rng), tmp_path / "rng.pt")
    restored = numpy_rng_from_tensors(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert np.array_equal(restored.permutation(50), rng.permutation(50))


def test_prompt_stream_consumes_rng_like_a_plain_loop_and_restores(tok):
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    data = make_prompts(tok, 6)
    loader = DataLoader(data, batch_size=2, shuffle=True, drop_last=True, collate_fn=DataCollatorWithPadding(tok))

    def plain():
        while True:
            yield from loader

    torch.manual_seed(3)
    reference = plain()
    ref_batches = [next(reference)["input_ids"] for _ in range(7)]
    ref_after = torch.rand(1)
    torch.manual_seed(3)
    stream = PromptStream(loader)
    batches = [next(stream)["input_ids"] for _ in range(4)]
    saved, rng_after_4 = stream.state(), capture_torch_rng()
    batches += [next(stream)["input_ids"] for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(batches, ref_batches, strict=True))
    assert torch.equal(torch.rand(1), ref_after)
    resumed = PromptStream(loader)
    resumed.restore(saved)
    torch.set_rng_state(rng_after_4["torch"])
    assert all(torch.equal(next(resumed)["input_ids"], b) for b in ref_batches[4:])


def test_config_and_input_validation(tmp_path, tok, initial):
    with pytest.raises(ValueError, match="robust_version"):
        DRPPOConfig(output_dir=str(tmp_path), robust_version="vC", bf16=False)
    with pytest.raises(ValueError, match="divergence"):
        DRPPOConfig(output_dir=str(tmp_path), robust_version="vA", divergence="wasserstein", bf16=False)
    with pytest.raises(ValueError, match="rho"):
        DRPPOConfig(output_dir=str(tmp_path), robust_version="vA", divergence="tv", rho=-0.1, bf16=False)
    with pytest.raises(ValueError, match="no effect"):
        DRPPOConfig(output_dir=str(tmp_path), divergence="tv", rho=0.2, bf16=False)
    with pytest.raises(ValueError, match="row 1"):
        tokenize_prompts(Dataset.from_dict({"prompt": ["w1 w2", ""]}), tok)
    with pytest.raises(ValueError, match="no column 'query'"):
        tokenize_prompts(Dataset.from_dict({"prompt": ["w1"]}), tok, prompt_column="query")
    chat = tokenize_prompts(Dataset.from_dict({"prompt": [[{"role": "user", "content": "w1 w2"}]]}), _chat(tok))
    assert chat[0]["input_ids"] == tok("w0 w1 w2 w15")["input_ids"]
    right = copy.deepcopy(tok)
    right.padding_side = "right"
    with pytest.raises(ValueError, match="pad on the left"):
        run(tmp_path, right, initial, make_prompts(tok, 8), updates=1)
    with pytest.raises(ValueError, match="input_ids"):
        run(tmp_path, tok, initial, Dataset.from_dict({"prompt": ["w1"] * 8}), updates=1)


def _chat(tok):
    chat = copy.deepcopy(tok)
    chat.chat_template = (
        "{% for m in messages %}w0 {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w15{% endif %}"
    )
    return chat


# ---------------------------------------------------------------------------- against trl 1.12
def test_plain_ppo_matches_trl_ppo_trainer(tmp_path, tok, initial):
    """Same seed and data -> the same parameters as trl 1.12's PPOTrainer after 3 updates.

    The rollouts are identical because the random numbers are drawn in the same order: both
    trainers start from deep copies of the same models; DRPPOTrainer inherits trl's constructor,
    which seeds torch with ``args.seed`` before preparing the prompt dataloader and with the
    per-rank seed after it, so the prompt shuffles (drawn from the global torch RNG when each data
    pass starts) and the sampling inside ``generate`` read the same global stream.  trl shuffles the
    PPO minibatches with numpy's global legacy RNG, which trl never seeds: the test seeds it with
    ``args.seed``, and DRPPOTrainer's own ``RandomState(args.seed)`` yields the same permutations.
    ``gradient_accumulation_steps = 1`` (where the two optimiser-step schedules coincide) and
    ``num_sample_generations = 0`` (trl draws no debugging samples).  3 updates of 4 prompts over
    8 prompts cross a data pass; two minibatches per epoch and several rollout chunks are exercised.
    """
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    data = make_prompts(tok, 8)
    cfg = {
        **BASE,
        "per_device_train_batch_size": 4,
        "local_rollout_forward_batch_size": 3,
        "total_episodes": 12,
    }

    policy = copy.deepcopy(initial["policy"])
    theirs = PPOTrainer(
        args=PPOConfig(output_dir=str(tmp_path / "trl"), num_sample_generations=0, **cfg),
        processing_class=tok,
        model=policy,
        ref_model=copy.deepcopy(policy),
        reward_model=copy.deepcopy(initial["reward"]),
        train_dataset=data,
        value_model=copy.deepcopy(initial["value"]),
    )
    np.random.seed(cfg["seed"])
    theirs.train()
    ours = run(
        tmp_path,
        tok,
        initial,
        data,
        updates=3,
        per_device_train_batch_size=4,
        local_rollout_forward_batch_size=3,
    )

    a, b = weights(theirs), weights(ours)
    start = {f"policy.{k}": v for k, v in initial["policy"].named_parameters()}
    assert max_abs_diff({k: a[k] for k in start}, start) > 1e-3  # training moved the policy
    assert max_abs_diff(a, b) <= 1e-6
    for key in ("objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg"):
        assert [h[key] for h in theirs.state.log_history] == pytest.approx([h[key] for h in ours.state.log_history])


# ---------------------------------------------------------------------------- robust variants
def test_uniform_vA_vB_equal_plain_ppo_and_robust_weights_change_the_update(tmp_path, tok, initial):
    data = make_prompts(tok, 16)
    plain = weights(run(tmp_path, tok, initial, data, updates=2))
    for version, divergence in (("vA", "tv"), ("vB", "chi2"), ("vA", "none")):
        uniform = run(
            tmp_path,
            tok,
            initial,
            data,
            updates=2,
            robust_version=version,
            divergence=divergence,
            rho=0.0,
        )
        assert_equal_weights(weights(uniform), plain)
        assert all(h["robust/ess"] == pytest.approx(8.0) for h in uniform.state.log_history)
    va = weights(run(tmp_path, tok, initial, data, updates=2, robust_version="vA", divergence="tv", rho=0.3))
    vb = weights(run(tmp_path, tok, initial, data, updates=2, robust_version="vB", divergence="tv", rho=0.3))
    assert max_abs_diff(va, plain) > 1e-5 and max_abs_diff(vb, plain) > 1e-5 and max_abs_diff(va, vb) > 1e-5


@pytest.mark.parametrize("version", ["none", "vA", "vB"])
def test_reward_rises_on_target_token_task(tmp_path, tok, initial, version):
    """Reward = share of the target token in the response: 20 updates lift it well above chance (1/20).

    The robust variants learn more slowly here by design: the rare responses that contain the
    target have the highest returns, the weight the worst-case q takes off (rho = 0.1 keeps most).
    """
    target = tok.convert_tokens_to_ids(TARGET)
    robust = {} if version == "none" else {"robust_version": version, "divergence": "tv", "rho": 0.1}
    trainer = run(
        tmp_path,
        tok,
        initial,
        make_prompts(tok, 16, exclude=(TARGET,)),
        updates=20,
        reward=TargetFractionReward(target, 4),
        response_length=4,
        stop_token=None,
        missing_eos_penalty=None,
        num_ppo_epochs=4,
        learning_rate=3e-3,
        kl_coef=0.01,
        seed=1,
        **robust,
    )
    scores = [h["objective/scores"] for h in trainer.state.log_history]
    assert len(scores) == 20
    assert np.mean(scores[-3:]) > np.mean(scores[:3]) + 0.15, scores
    robust_returns = [h["objective/robust_return"] for h in trainer.state.log_history]
    assert np.mean(robust_returns[-3:]) > np.mean(robust_returns[:3]) + 0.1, robust_returns


# ---------------------------------------------------------------------------- seeding, resume
def test_same_seed_same_weights_other_seed_differs(tmp_path, tok, initial):
    data = make_prompts(tok, 16)
    first = weights(run(tmp_path, tok, initial, data, updates=2, seed=5))
    assert_equal_weights(weights(run(tmp_path, tok, initial, data, updates=2, seed=5)), first)
    assert max_abs_diff(weights(run(tmp_path, tok, initial, data, updates=2, seed=6)), first) > 1e-6


def test_resume_gives_the_uninterrupted_weights(tmp_path, tok, initial):
    """5 updates over 2 batches per data pass; resume from update 3 (mid-pass) in a fresh trainer."""
    from transformers import AutoModelForCausalLM

    data = make_prompts(tok, 16)
    robust = {"robust_version": "vB", "divergence": "tv", "rho": 0.25}
    full = run(
        tmp_path,
        tok,
        initial,
        data,
        updates=5,
        save_strategy="steps",
        save_steps=3,
        output_dir=str(tmp_path / "full"),
        **robust,
    )
    assert sorted(os.listdir(tmp_path / "full")) == ["checkpoint-3", "checkpoint-5"]
    resumed = run(
        tmp_path,
        tok,
        initial,
        data,
        updates=5,
        output_dir=str(tmp_path / "resumed"),
        resume=str(tmp_path / "full" / "checkpoint-3"),
        **robust,
    )
    assert_equal_weights(weights(resumed), weights(full))
    assert resumed.state.global_step == 5
    assert resumed.state.log_history[-1]["loss/policy_avg"] == full.state.log_history[-1]["loss/policy_avg"]

    resumed.save_model(str(tmp_path / "final"))
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final"))
    for (name, p), (_, q) in zip(loaded.named_parameters(), resumed.policy_model.named_parameters(), strict=True):
        assert torch.equal(p, q), name
    assert os.path.isfile(tmp_path / "final" / "tokenizer.json")
    leftovers = ("*.partial", ".*.old", ".tmp-*")  # core.atomic staging folders, set-aside old ones
    assert not [f for pattern in leftovers for f in glob.glob(str(tmp_path / "**" / pattern), recursive=True)]

    with pytest.raises(ValueError, match="different settings"):
        run(
            tmp_path,
            tok,
            initial,
            data,
            updates=5,
            output_dir=str(tmp_path / "other"),
            resume=str(tmp_path / "full" / "checkpoint-3"),
            robust_version="vA",
            divergence="tv",
            rho=0.25,
        )


class _PoisonAfterFirstUpdate:
    """Forward hook turning a module's output to nan once the first update has finished."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, module, inputs, output):
        return output * float("nan") if self.armed else output


@pytest.mark.parametrize("poisoned", ["reward", "value"])
def test_non_finite_loss_stops_without_writing_a_checkpoint(tmp_path, tok, initial, poisoned):
    from transformers import TrainerCallback

    hook = _PoisonAfterFirstUpdate()

    class Arm(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            hook.armed = True

    cfg = {**BASE, "save_strategy": "steps", "save_steps": 1, "output_dir": str(tmp_path / "nan")}
    policy = copy.deepcopy(initial["policy"])
    reward, value = copy.deepcopy(initial["reward"]), copy.deepcopy(initial["value"])
    (reward if poisoned == "reward" else value).score.register_forward_hook(hook)
    trainer = DRPPOTrainer(
        args=DRPPOConfig(total_episodes=24, **cfg),
        processing_class=tok,
        model=policy,
        ref_model=copy.deepcopy(policy),
        reward_model=reward,
        train_dataset=make_prompts(tok, 16),
        value_model=value,
        callbacks=[Arm()],
    )
    with pytest.raises(NonFiniteError, match="update 2.*non-finite"):
        trainer.train()
    assert sorted(os.listdir(tmp_path / "nan")) == ["checkpoint-1"]
    from safetensors.torch import load_file

    for name in ("policy.safetensors", "value_model.safetensors"):
        tensors = load_file(str(tmp_path / "nan" / "checkpoint-1" / name))
        assert tensors and all(torch.isfinite(t).all() for t in tensors.values())


def test_non_finite_gradient_stops_before_the_step_and_a_nan_policy_is_not_saved(tmp_path, tok, initial):
    """A finite loss with a nan gradient (from update 2 on) stops before that optimiser step; and
    ``save_model`` refuses a policy with nan weights before writing anything."""
    from transformers import TrainerCallback

    from core.atomic import staging_directory
    from core.trainers.guards import NonFiniteError

    policy = copy.deepcopy(initial["policy"])
    weight = policy.model.layers[0].mlp.up_proj.weight

    class Arm(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            weight.register_hook(lambda grad: grad * float("nan"))

    trainer = DRPPOTrainer(
        args=DRPPOConfig(total_episodes=24, output_dir=str(tmp_path / "nan"), **BASE),
        processing_class=tok,
        model=policy,
        ref_model=copy.deepcopy(policy),
        reward_model=copy.deepcopy(initial["reward"]),
        train_dataset=make_prompts(tok, 16),
        value_model=copy.deepcopy(initial["value"]),
        callbacks=[Arm()],
    )
    with pytest.raises(NonFiniteError, match=r"update 2 \(PPO epoch 0, minibatch 0\): non-finite gradient norm"):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    with torch.no_grad():
        weight.fill_(float("nan"))
    out = tmp_path / "policy"
    with pytest.raises(NonFiniteError, match=r"DR-PPO policy: 1 of [0-9]+ tensors .*model\.layers\.0\.mlp\.up_proj"):
        trainer.save_model(str(out))
    assert not out.exists() and not staging_directory(out).exists()


def test_peft_policy_uses_the_adapter_free_model_as_reference(tmp_path, tok, initial):
    """ref_model=None with a LoRA policy: the reference is the policy with its adapter disabled."""
    from peft import LoraConfig

    args = DRPPOConfig(output_dir=str(tmp_path / "lora"), total_episodes=16, **BASE)
    trainer = DRPPOTrainer(
        args=args,
        processing_class=tok,
        model=copy.deepcopy(initial["policy"]),
        ref_model=None,
        reward_model=copy.deepcopy(initial["reward"]),
        train_dataset=make_prompts(tok, 16),
        value_model=copy.deepcopy(initial["value"]),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    kls = [h["objective/kl"] for h in trainer.state.log_history]
    # LoRA starts as the identity (KL 0 up to float rounding: the adapter-free reference and the
    # zero-initialised adapter take different kernels), then moves away
    assert abs(kls[0]) < 1e-6 and abs(kls[1]) > 1e-6, kls
    trainer.save_model(str(tmp_path / "adapter"))
    assert os.path.isfile(tmp_path / "adapter" / "adapter_model.safetensors")


# ---------------------------------------------------------------------------- logging
def test_logs_robust_weight_statistics_per_update(tmp_path, tok, initial):
    """TV with rho = 0.5 over n = 8 distinct returns: 4 weights go to 0 and the lowest return gets
    1/8 + 1/2, so max weight 0.625, zero fraction 0.5 and ESS 1 / (0.625^2 + 3/64) every update.
    The same per-update metrics reach MLflow (SQLite file) through core.tracking's callback, and a
    run without a tracking URI trains with a no-op logger."""
    from mlflow.tracking import MlflowClient
    from transformers import TrainerCallback

    from core.tracking import mlflow_run

    class Seen(TrainerCallback):
        def __init__(self) -> None:
            self.logs: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs))

    seen, uri = Seen(), f"sqlite:///{tmp_path / 'mlflow.db'}"
    robust = {"robust_version": "vA", "divergence": "tv", "rho": 0.5}
    with mlflow_run("dr-ppo", "tv-0.5", params=robust, tracking_uri=uri) as tracked:
        trainer = run(
            tmp_path,
            tok,
            initial,
            make_prompts(tok, 16),
            updates=3,
            callbacks=[seen, tracked.callback()],
            **robust,
        )
    assert len(seen.logs) == 3
    for logs in seen.logs:
        assert logs["robust/max_weight"] == pytest.approx(0.625)
        assert logs["robust/frac_zero_weights"] == pytest.approx(0.5)
        assert logs["robust/ess"] == pytest.approx(1 / (0.625**2 + 3 / 64))
        assert logs["objective/robust_return"] < logs["objective/rlhf_reward"]
        for key in ("objective/kl", "objective/scores", "loss/policy_avg", "loss/value_avg", "lr"):
            assert np.isfinite(logs[key]), key
    history = MlflowClient(tracking_uri=uri).get_metric_history(tracked.run_id, "robust/ess")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == [logs["robust/ess"] for logs in seen.logs]
    assert trainer.state.log_history[-1]["step"] == 3

    with mlflow_run("dr-ppo", "no-uri") as untracked:  # tracking off: no-op logger, training unaffected
        assert not untracked.enabled
        run(
            tmp_path,
            tok,
            initial,
            make_prompts(tok, 16),
            updates=1,
            callbacks=[untracked.callback()],
            **robust,
        )


def test_gradient_checkpointing_is_honoured_with_the_same_update(tmp_path, tok, initial, monkeypatch):
    """``gradient_checkpointing: true`` recomputes the policy's and value model's activations in
    the backward pass (this loop replaces Trainer.train, which would enable it) and gives the same
    update; the rollouts are sampled in eval mode, where generation keeps its KV cache."""
    from core.trainers import ppo

    modes, real = [], ppo.batch_generation
    monkeypatch.setattr(ppo, "batch_generation", lambda policy, *a: modes.append(policy.training) or real(policy, *a))
    data = make_prompts(tok, 16)
    plain = run(tmp_path / "a", tok, initial, data, updates=2, gradient_checkpointing=False)
    checkpointed = run(tmp_path / "b", tok, initial, data, updates=2, gradient_checkpointing=True)
    assert checkpointed.policy_model.is_activation_checkpointing
    assert checkpointed.value_model.is_activation_checkpointing
    assert not plain.policy_model.is_activation_checkpointing
    assert max_abs_diff(weights(checkpointed), weights(plain)) < 1e-5
    assert modes == [True, True, False, False]  # plain: as before; checkpointed: sampled in eval mode
    assert checkpointed.policy_model.training  # and back in train mode for the update


def test_ppo_throughput_counts_each_rollout(tmp_path, tok, initial):
    """DR-PPO's own loop reports its rollouts' rows and non-padding tokens per update
    (core.trainers.throughput), beside the run and not into log_history."""
    from core.trainers.throughput import ThroughputMeter

    logged = []
    meter = ThroughputMeter(lambda metrics, step: logged.append((step, dict(metrics))))
    trainer = run(tmp_path, tok, initial, make_prompts(tok, 16), updates=2, throughput=meter)
    assert [step for step, _ in logged] == [1, 2]
    for _, m in logged:
        assert m["perf/samples_per_s"] > 0 and m["perf/tokens_per_s"] > m["perf/samples_per_s"]
        # rollout and optimisation time within the step; the share of responses ending at eos
        assert 0 < m["perf/rollout_s"] and 0 < m["perf/optimise_s"]
        assert m["perf/rollout_s"] + m["perf/optimise_s"] <= m["perf/s_per_step"]
        assert 0.0 <= m["perf/stopped_share"] <= 1.0
    eos = [e["val/num_eos_tokens"] for e in trainer.state.log_history if "val/num_eos_tokens" in e]
    assert [m["perf/stopped_share"] > 0 for _, m in logged] == [n > 0 for n in eos]
    assert set(meter.placement) == {"cpu float32"}  # policy and critic
    assert meter.placement["cpu float32"] == sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert not any(k.startswith("perf/") for entry in trainer.state.log_history for k in entry)
