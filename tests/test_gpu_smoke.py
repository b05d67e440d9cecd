"""benchmarks/gpu_smoke.py on the CPU (``--allow-cpu``): configs/gpu-small.yaml with its models
replaced by tiny local Llamas in the hub format and its data by an AlpacaEval-layout fixture. The
four trainers' placement and throughput come from their MLflow runs, PPO's phases and stop share
are there, the DR-DPO job stopped by SIGTERM after a checkpoint resumes from it, and the chunked
log-probs equal one forward's. Without a GPU and without ``--allow-cpu`` it refuses by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_tiny_llama, make_tiny_tokenizer
from tests.test_real_workflow import write_alpaca
from tests.test_workflow import REPO, VENV_BIN

SMOKE = REPO / "benchmarks" / "gpu_smoke.py"


def tiny_config(tmp: Path) -> Path:
    """configs/gpu-small.yaml on tiny local models, the fixture's data, a few steps, no GPU."""
    tok = make_tiny_tokenizer()
    for name, reward in (("lm", False), ("rm", True)):
        make_tiny_llama(tok, seed=0, reward=reward).save_pretrained(tmp / name, safe_serialization=True)
        tok.save_pretrained(tmp / name)
    write_alpaca(tmp / "data", n_instructions=40)
    cfg = yaml.safe_load((REPO / "configs" / "gpu-small.yaml").read_text())
    cfg["tracking"] = {"uri": f"sqlite:///{tmp}/mlflow.db"}
    for kind in ("train", "eval", "light"):
        cfg["resources"][kind].update(threads=1, mem_mb=2000, **({"gpu": 0} if kind != "light" else {}))
    cfg["models"] = {role: {"source": "local", "path": str(tmp / ("rm" if role == "reward" else "lm"))}
                     for role in ("policy", "reward", "ppo_reward")}  # fmt: skip
    cfg["data"]["sources"]["pool"].update(source=str(tmp / "data/alpaca_eval/results"), max_rows=120)
    cfg["data"]["sources"]["hhh"]["source"] = str(REPO / "tests/fixtures/data/hhh_alignment")
    small = {"max_length": 96, "per_device_train_batch_size": 4, "logging_steps": 2}
    cfg["sft"]["train"].update(small, max_steps=4)
    cfg["dr"]["reward"].update(n_train=40)
    cfg["dr"]["reward"]["train"].update(small, max_steps=3)
    cfg["dr"]["dpo"].update(n_train=40)
    cfg["dr"]["dpo"]["train"].update(small, max_steps=30, save_steps=2)  # stopped after its first checkpoint
    cfg["dr"]["ppo"].update(n_train=16)
    cfg["dr"]["ppo"]["train"].update(total_episodes=16, per_device_train_batch_size=8, response_length=8,
                                     max_prompt_length=48)  # fmt: skip
    cfg["eval"].update(max_length=96, max_batch_tokens=256)
    path = tmp / "gpu-tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_smoke(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", CUDA_VISIBLE_DEVICES="")
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(SMOKE), *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.mark.slow
def test_the_smoke_run_reports_every_check_on_the_cpu(tmp_path):
    config = tiny_config(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_smoke(tmp_path, "--configfile", str(config), "--directory", str(work), "--cores", "2", "--allow-cpu")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    report = json.loads((work / "results/gpu-small/gpu_smoke.json").read_text())
    assert report["failures"] == [] and report["device"] == "cpu"
    assert set(report["trainers"]) == {"SFT", "DPO", "DR-DPO", "DR-PPO"}
    for t in report["trainers"].values():
        device, count = t["trainable"].split(": ")
        assert device == "cpu float32" and int(count.replace(",", "")) > 1000
        assert t["s_per_step"] > 0 and t["tokens_per_s"] > 0 and t["peak_memory_gib"] > 0
    ppo = report["trainers"]["DR-PPO"]
    assert ppo["rollout_s"] > 0 and ppo["optimise_s"] > 0 and 0 <= ppo["stopped_share"] <= 1
    assert "[checkpoint] resumed from step 2" in report["resume"]["resumed"]
    assert report["resume"]["stopped_rc"] != 0  # the first attempt was stopped, not finished
    assert report["chunked_logprob_max_abs_diff"] <= 1e-6
    assert "all checks passed" in proc.stdout and "DR-PPO: rollout" in proc.stdout


def test_without_a_gpu_it_refuses_by_name(tmp_path):
    proc = run_smoke(tmp_path, "--configfile", str(REPO / "configs" / "gpu-small.yaml"), "--directory", str(tmp_path))
    assert proc.returncode != 0 and "torch sees no CUDA device (pass --allow-cpu" in proc.stderr


def test_the_checks_name_a_parameter_off_the_gpu_or_in_16_bit_weights():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_smoke", SMOKE)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    good = {"trainable": "cuda:0 float32: 1,000", "s_per_step": 0.1}
    trainers = {"SFT": good, "DPO": {**good, "trainable": "cuda:0 bfloat16: 1,000"},
                "DR-PPO": {"trainable": "cpu float32: 10; cuda:0 float32: 990"}}  # fmt: skip
    report = {"trainers": trainers, "resume": {"resumed": "[checkpoint] resumed from step 10"},
              "chunked_logprob_max_abs_diff": 2e-5}  # fmt: skip
    failures = smoke.failures(report, "cuda")
    assert len(failures) == 4, failures
    assert any(f.startswith("DPO: trainable parameters in 16-bit weights") for f in failures)
    assert any(f.startswith("DR-PPO: a trainable parameter off the cuda") for f in failures)
    assert any(f.startswith("DR-PPO: no perf/s_per_step") for f in failures)
    assert any(f.startswith("chunked log-probs differ by 2.00e-05") for f in failures)
    assert smoke.failures({**report, "trainers": {"SFT": good}, "chunked_logprob_max_abs_diff": 0.0}, "cuda") == []
    unresumed = {**report, "trainers": {"SFT": good}, "resume": {"resumed": None}, "chunked_logprob_max_abs_diff": 0.0}
    assert smoke.failures(unresumed, "cuda") == ["DR-DPO: the rerun after SIGTERM did not resume from its checkpoint"]
