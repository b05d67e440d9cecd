"""Tiny data, models and configs for the trainer tests (offline; written by the tests themselves).

Preference data with two domains: in the majority domain ``dA`` the completion with ``good`` is
preferred; in the planted minority domain ``dB`` the preference is flipped, so a model fitted to
the mixture has larger losses on ``dB`` and DR weights should move mass onto it.
"""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from conftest import make_tiny_llama, make_tiny_tokenizer  # noqa: E402

WORDS = ["dA", "dB", "good", "bad", ":"] + [f"t{i}" for i in range(8)] + [f"f{i}" for i in range(8)]


def tokenizer():
    """The word-level tokenizer over :data:`WORDS` (plus bos/eos/pad/unk)."""
    return make_tiny_tokenizer(WORDS)


def preference_rows(n: int, seed: int = 0, minority: float = 0.25, ensemble: int = 0) -> list[dict]:
    """``n`` pairs; a fraction ``minority`` from the flipped domain ``dB``; distillation targets.

    ``target_chosen``/``target_rejected`` are +1/-1 for the good/bad completion (d-DPO), and for
    ``ensemble = K`` the columns ``target_chosen_k``/``target_rejected_k`` are the same targets
    scaled by ``k + 1`` (members of different strength, e-DPO).
    """
    rng = random.Random(seed)
    rows = []
    n_minority = round(n * minority)
    for i in range(n):
        domain = "dB" if i < n_minority else "dA"
        prompt = f"{domain} t{rng.randrange(8)} t{rng.randrange(8)} :"
        good, bad = f" good f{rng.randrange(8)}", f" bad f{rng.randrange(8)} f{rng.randrange(8)}"
        chosen, rejected = (good, bad) if domain == "dA" else (bad, good)
        sign = 1.0 if domain == "dA" else -1.0
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "domain": domain}
        row["target_chosen"], row["target_rejected"] = sign, -sign
        for k in range(ensemble):
            row[f"target_chosen_{k}"], row[f"target_rejected_{k}"] = sign * (k + 1), -sign * (k + 1)
        rows.append(row)
    rng.shuffle(rows)
    return rows


def dataset(n: int = 32, seed: int = 0, minority: float = 0.25, ensemble: int = 0):
    from datasets import Dataset

    return Dataset.from_list(preference_rows(n, seed, minority, ensemble))


def common_args(output_dir, **overrides) -> dict:
    """TrainingArguments shared by the tests: CPU, fp32, no checkpoints or reporting unless asked."""
    args = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        max_steps=4,
        learning_rate=5e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        data_seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    args.update(overrides)
    return args


def reward_trainer(
    output_dir, data=None, model_seed: int = 0, trainer_cls=None, callbacks=None, eval_data=None, **overrides
):
    """A DR reward trainer (or ``trainer_cls`` with a plain ``RewardConfig``) on the tiny model
    (``eval_data``: its ``eval_dataset``)."""
    from trl import RewardConfig, RewardTrainer

    from core.trainers.reward import DRRewardConfig, DRRewardTrainer

    tok = tokenizer()
    model = make_tiny_llama(tok, seed=model_seed, reward=True)
    data = dataset() if data is None else data
    if trainer_cls is RewardTrainer:
        config = RewardConfig(**common_args(output_dir, **overrides))
    else:
        config = DRRewardConfig(**common_args(output_dir, **overrides))
        trainer_cls = trainer_cls or DRRewardTrainer
    return trainer_cls(
        model=model,
        args=config,
        train_dataset=data,
        eval_dataset=eval_data,
        processing_class=tok,
        callbacks=callbacks,
    )


def dpo_trainer(
    output_dir,
    data=None,
    model_seed: int = 0,
    trainer_cls=None,
    callbacks=None,
    eval_data=None,
    ref_logps_cache=None,
    **overrides,
):
    """A DR-DPO trainer (or trl's ``DPOTrainer`` with ``DPOConfig``) on the tiny causal LM
    (``eval_data``: its ``eval_dataset``; ``ref_logps_cache``: DRDPOTrainer's shared pi_ref log-probs)."""
    import copy

    from trl import DPOConfig, DPOTrainer

    from core.trainers.dpo import DRDPOConfig, DRDPOTrainer, trl_loss_types

    tok = tokenizer()
    model = make_tiny_llama(tok, seed=model_seed)
    ref = copy.deepcopy(model)
    data = dataset() if data is None else data
    overrides.setdefault("beta", 0.5)
    if trainer_cls is DPOTrainer:
        # trl's own trainer takes trl's loss names ("dpo" is its "sigmoid")
        if "loss_type" in overrides:
            loss_type = overrides["loss_type"]
            overrides["loss_type"] = trl_loss_types([loss_type] if isinstance(loss_type, str) else loss_type)
        config = DPOConfig(**common_args(output_dir, **overrides))
    else:
        config = DRDPOConfig(**common_args(output_dir, **overrides))
        trainer_cls = trainer_cls or DRDPOTrainer
    return trainer_cls(
        model=model,
        ref_model=ref,
        args=config,
        train_dataset=data,
        eval_dataset=eval_data,
        processing_class=tok,
        callbacks=callbacks,
        **({} if ref_logps_cache is None else {"ref_logps_cache": ref_logps_cache}),
    )


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_params_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"parameter {key} differs"


def max_param_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def logged(trainer, key: str) -> list[float]:
    return [float(entry[key]) for entry in trainer.state.log_history if key in entry]


def with_domain_share(trainer_cls):
    """Subclass of a DR trainer recording, per optimiser step, the weight on planted-minority examples.

    Appends ``(sum of q_i over dB examples, fraction of dB examples)`` to ``trainer.domain_share``
    (one micro-batch per step, so ``last_robust_step`` is this batch).
    """

    class Recorder(trainer_cls):
        domain_share: list

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.model.training:
                n = inputs["input_ids"].shape[0] // 2
                token = self.processing_class.convert_tokens_to_ids("dB")
                is_b = (inputs["input_ids"][:n] == token).any(dim=1).cpu().numpy()
                weights = self.last_robust_step.weights
                self.__dict__.setdefault("domain_share", []).append((float(weights[is_b].sum()), float(is_b.mean())))
            return out

    return Recorder


def dr_and_trl_eval_losses(make, trl_cls, out, max_steps: int):
    """A DR (TV, rho 0.3) trainer from ``make`` fitted to the majority domain, and its validation
    loss as it and as trl's own ``trl_cls`` score the same trained weights (a validation set with a
    flipped half, so the per-example losses differ). Returns ``(trainer, its loss, trl's loss, n_val)``."""
    val = dataset(n=12, seed=1, minority=0.5)
    common = dict(data=dataset(minority=0.0), eval_data=val, per_device_eval_batch_size=8, max_steps=max_steps)
    ours = make(out / "dr", divergence="tv", rho=0.3, **common)
    ours.train()
    theirs = make(out / "trl", trainer_cls=trl_cls, **common)
    theirs.model.load_state_dict(ours.model.state_dict())  # the trained DR model, scored by trl's code
    return ours, ours.evaluate()["eval_loss"], theirs.evaluate()["eval_loss"], len(val)
