"""The memory plan (core.plan.memory, benchmarks/memory_plan.py): exact parameter counts of the
models built on the meta device, terms that grow as they should, and configs/paper.yaml's
requests at or above their plans."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import yaml

from core.plan.config import validate_config
from core.plan.memory import GEMMA_2B, GPU_GIB, RULE_KIND, model_shapes, rule_plans

REPO = Path(__file__).resolve().parents[1]


def _paper() -> dict:
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    validate_config(cfg)
    return cfg


def test_gemma_2b_counted_on_the_meta_device():
    """2,506,172,416 parameters (gemma-2b); LoRA r=32 on q and v: 18 x 32 x ((2048 + 2048) + (2048 + 256))."""
    lm = model_shapes(GEMMA_2B, {"r": 32, "lora_alpha": 64})
    assert lm.params == 2_506_172_416 and lm.lora_params == 18 * 32 * (4096 + 2304)
    assert (lm.layers, lm.hidden, lm.vocab) == (18, 2048, 256000)


def test_paper_config_requests_at_least_its_plan():
    """Every GPU rule of configs/paper.yaml fits 90% of an 80 GB GPU and requests at least its
    planned host memory; the benchmark says so too (exit 0)."""
    cfg = _paper()
    plans = {p.rule: p for p in rule_plans(cfg)}
    assert set(plans) == set(RULE_KIND)
    for p in plans.values():
        assert p.gpu_gib <= 0.9 * GPU_GIB, (p.rule, p.gpu_gib, p.terms)
        assert p.host_gib <= cfg["resources"][RULE_KIND[p.rule]]["mem_mb"] / 1024, (p.rule, p.host_gib)
    assert plans["train_ppo"].terms["critic (float32 master weights, AdamW)"] > 30  # 16 bytes x 2.5B
    out = subprocess.run([sys.executable, "benchmarks/memory_plan.py", "--configfile", "configs/paper.yaml"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0 and "train_distill_policy" in out.stdout and "OVER" not in out.stdout, out.stdout


def test_a_request_below_its_plan_fails(tmp_path):
    """Twice the distillation policy's batch puts its logits over the GPU; a request of 8 GB host
    memory for evaluation is below two gemma-2b models: both are flagged."""
    cfg = _paper()
    big = copy.deepcopy(cfg)
    big["distill"]["policy"]["train"]["per_device_train_batch_size"] *= 4
    plans = {p.rule: p for p in rule_plans(big)}
    base = {p.rule: p for p in rule_plans(cfg)}
    assert plans["train_distill_policy"].terms["logits"] == 4 * base["train_distill_policy"].terms["logits"]
    assert plans["train_distill_policy"].gpu_gib > 0.9 * GPU_GIB
    small = copy.deepcopy(cfg)
    small["resources"]["eval"]["mem_mb"] = 8000
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small))
    out = subprocess.run([sys.executable, "benchmarks/memory_plan.py", "--configfile", str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 1 and "eval_dpo_dr" in out.stdout and "OVER" in out.stdout


def test_the_token_budget_bounds_evaluation_batches():
    """paper.yaml's eval.max_batch_tokens (16K) halves a scoring batch of 16 rows x 2,048 tokens."""
    cfg = _paper()
    unbounded = copy.deepcopy(cfg)
    del unbounded["eval"]["max_batch_tokens"]
    plans, base = ({p.rule: p for p in rule_plans(c)} for c in (unbounded, cfg))
    for rule in ("eval_dpo_dr", "eval_rm_dr", "relabel"):
        assert plans[rule].terms["activations"] == 2 * base[rule].terms["activations"]
