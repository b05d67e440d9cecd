"""The memory plan of a config's GPU jobs: each model-running rule's peak GPU and host memory,
from the models' shapes built on the meta device (no weights, no allocation) and the config's
batch and length settings, to set beside what the rule requests (``benchmarks/memory_plan.py``).

A plan, not a measurement. Every term is stated here and counts bytes:

* **weights**: the exact parameter count of the model built on ``meta`` (LoRA adapters included),
  times its dtype's size; a full-weight critic (DR-PPO's value model) in float32;
* **training state**: each trainable parameter's float32 weight, gradient and two AdamW moments
  (16 bytes), LoRA's adapters or the critic's weights;
* **activations**, with gradient checkpointing (every GPU config sets it): each layer's input
  kept (``L B T H`` values) plus one layer recomputed (``B T (4 H + 3 I)``: attention projections
  and the MLP's gate, up and activation), in the compute dtype;
* **logits**: a training forward's ``B T V`` logits, their float32 log-softmax and their gradient
  (trl computes them over the whole vocabulary); evaluation's at most
  ``core.eval.pairwise.LOGIT_BUDGET`` float32 logits and their logsumexp temporary;
* **host**: every model a job loads, at once, before it moves to the device, plus the runtime
  (:data:`RUNTIME_GIB`: torch, CUDA context, Python, the batch).

``B`` counts sequences (a preference pair is two), ``T`` the configured ``max_length``.
Torch, transformers and peft are imported inside the functions (the plan stays torch-free).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: gemma-2b's shapes (google/gemma-2b-it config.json), the model of configs/paper.yaml
GEMMA_2B = {"vocab_size": 256000, "hidden_size": 2048, "intermediate_size": 16384, "num_hidden_layers": 18,
            "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
            "max_position_embeddings": 8192}  # fmt: skip
#: host memory of a job besides its models: torch and CUDA runtime, Python, data batches (GiB)
RUNTIME_GIB = 4.0
#: the GPU a GPU config is planned for (an 80 GB A100 / H100)
GPU_GIB = 80.0
GIB = 2**30
#: bytes per value of a model dtype (``auto``: the checkpoint's own, bfloat16 for gemma)
_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2}


@dataclass(frozen=True)
class Shapes:
    """What the plan needs of a model: parameters (exact, counted on ``meta``), LoRA's trainable
    ones, and the dimensions of its activations and logits."""

    params: int
    lora_params: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int


def model_shapes(arch: dict[str, Any], lora: dict[str, Any] | None, classifier: bool = False) -> Shapes:
    """Build the model of ``arch`` (a Gemma config's fields) on the meta device, with ``lora``'s
    adapters if any, and count its parameters."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, GemmaConfig

    config = GemmaConfig(**arch)
    if classifier:
        config = copy.deepcopy(config)
        config.num_labels = 1
    with torch.device("meta"):
        cls = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
        model = cls.from_config(config, dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    lora_params = 0
    if lora:
        from peft import LoraConfig, get_peft_model

        peft = get_peft_model(model, LoraConfig(**lora, task_type="SEQ_CLS" if classifier else None))
        lora_params = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    return Shapes(params, lora_params, config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                  config.vocab_size)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """One rule's planned peak memory (GiB) on the GPU and on the host, and its terms."""

    rule: str
    gpu_gib: float
    host_gib: float
    terms: dict[str, float]


def _activations(s: Shapes, rows: int, length: int, dtype_bytes: int) -> float:
    kept = s.layers * rows * length * s.hidden
    recomputed = rows * length * (4 * s.hidden + 3 * s.intermediate)
    return (kept + recomputed) * dtype_bytes


def _training_logits(s: Shapes, rows: int, length: int, dtype_bytes: int) -> float:
    return rows * length * s.vocab * (dtype_bytes + 4 + dtype_bytes)  # logits, float32 log-softmax, gradient


def _eval_logits(s: Shapes, tokens: int) -> float:
    from core.eval.pairwise import LOGIT_BUDGET

    return 2 * 4 * min(tokens * s.vocab, LOGIT_BUDGET)


def _plan(rule: str, gpu: dict[str, float], host_models: float) -> Plan:
    terms = {k: v / GIB for k, v in gpu.items()}
    return Plan(rule, sum(terms.values()), host_models / GIB + RUNTIME_GIB, terms)


def rule_plans(cfg: dict[str, Any], arch: dict[str, Any] | None = None) -> list[Plan]:
    """The plan of every rule of ``cfg`` that runs a model (:data:`RULE_KIND`), with ``arch``'s shapes."""
    arch = arch or GEMMA_2B
    pol, rwd = cfg["models"]["policy"], cfg["models"]["reward"]
    pb, rb = _BYTES[pol.get("dtype")], _BYTES[rwd.get("dtype")]
    lm, cls = model_shapes(arch, pol.get("lora")), model_shapes(arch, rwd.get("lora"), classifier=True)
    ev = cfg["eval"]
    plans = []

    def train(rule: str, s: Shapes, wb: int, section: dict, pairs: bool, reference: bool = False) -> None:
        """A Trainer job: a causal LM's logits (``s`` is the policy's), pi_ref's weights beside it."""
        t = section["train"]
        rows, length = int(t["per_device_train_batch_size"]) * (2 if pairs else 1), int(t.get("max_length", 1024))
        gpu = {"weights": s.params * wb, "training state": 16 * (s.lora_params or s.params),
               "activations": _activations(s, rows, length, wb)}  # fmt: skip
        if s is lm:
            gpu["logits"] = _training_logits(s, rows, length, wb)
        if reference:
            gpu["reference"] = s.params * wb
        plans.append(_plan(rule, gpu, s.params * wb * (2 if reference else 1)))

    train("train_rm_dr", cls, rb, cfg["dr"]["reward"], pairs=True)
    train("train_distill_rm", cls, rb, cfg["distill"]["reward"], pairs=True)
    if cfg["distill"]["oracle"].get("kind") == "model":
        train("train_oracle_rm", cls, rb, cfg["distill"]["oracle"], pairs=True)
    if "sft" in cfg:
        train("sft", lm, pb, cfg["sft"], pairs=False)
    # pi_ref sits beside the policy until its log-probs are precomputed (and through training where
    # p-DPO samples from it): planned as a second set of weights
    train("train_dpo_dr", lm, pb, cfg["dr"]["dpo"], pairs=True, reference=True)
    train("train_distill_policy", lm, pb, cfg["distill"]["policy"], pairs=True, reference=True)
    t = cfg["dr"]["ppo"]["train"]
    rows, length = int(t["per_device_train_batch_size"]), int(t["max_prompt_length"]) + int(t["response_length"])
    sampled = rows * int(t["response_length"]) * lm.vocab * 4  # the rollouts' sampling logits, float32
    ppo = {"policy weights": lm.params * pb, "policy training state": 16 * (lm.lora_params or lm.params),
           "reward model": cls.params * rb, "critic (float32 master weights, AdamW)": 16 * cls.params,
           "activations (policy and critic)": _activations(lm, rows, length, pb) + _activations(cls, rows, length, pb),
           "logits": _training_logits(lm, rows, length, pb) + sampled}  # fmt: skip
    plans.append(_plan("train_ppo", ppo, lm.params * pb + cls.params * rb + cls.params * 4))
    # a scoring batch's padded tokens: rows x max_length, at most eval.max_batch_tokens (core.eval.encoding.Batching)
    tokens = int(ev["batch_size"]) * int(ev["max_length"])
    tokens = min(tokens, int(ev.get("max_batch_tokens") or tokens))
    for rule in ("eval_dpo_dr", "eval_ppo", "sample_sft"):
        gpu = {"policy and reference weights": 2 * lm.params * pb, "logits (chunked)": _eval_logits(lm, tokens),
               "activations": tokens * (4 * lm.hidden + 3 * lm.intermediate) * pb}  # fmt: skip
        plans.append(_plan(rule, gpu, 2 * lm.params * pb))
    for rule in ("eval_rm_dr", "relabel", "score_targets"):
        gpu = {"weights": cls.params * rb, "activations": tokens * (4 * cls.hidden + 3 * cls.intermediate) * rb}
        plans.append(_plan(rule, gpu, cls.params * rb))
    return plans


RULE_KIND = {"train_rm_dr": "train", "train_distill_rm": "train", "train_oracle_rm": "train", "sft": "train",
             "train_dpo_dr": "train", "train_distill_policy": "train", "train_ppo": "train", "eval_dpo_dr": "eval",
             "eval_ppo": "eval", "sample_sft": "eval", "eval_rm_dr": "eval", "relabel": "eval",
             "score_targets": "eval"}  # fmt: skip
