"""One place decides a job's device (core.jobs.run.job_device) and every evaluation path puts its
models there; checked on the CPU with the CUDA queries stubbed (CI has no GPU)."""

from __future__ import annotations

import json

import pytest
import torch
from eval_tiny import ROWS, tiny_lm, tiny_tokenizer

from core.jobs.job import Job
from core.jobs.run import job_device, model_dtype


def _job(gpu: int, rule: str = "eval_dpo_dr", **kw) -> Job:
    return Job(rule=rule, input=kw.pop("input", {}), output=kw.pop("output", {}),
               params={"job": {"gpu": gpu}, **kw.pop("params", {})}, wildcards={}, **kw)  # fmt: skip


def test_a_job_runs_on_the_gpu_its_resources_ask_for_else_the_cpu(monkeypatch):
    assert job_device(_job(0)) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="rule eval_dpo_dr: its resources ask for a GPU .* sees no CUDA device"):
        job_device(_job(1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert job_device(_job(1)) == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a process of a multi-process job: its own GPU
    assert job_device(_job(1)) == torch.device("cuda", 1)
    assert job_device(_job(0)) == torch.device("cpu")  # asked for none: the CPU even where a GPU is


def test_bfloat16_where_the_device_computes_it(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert model_dtype("bfloat16", cpu) == "bfloat16" and model_dtype(None, cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert model_dtype("bfloat16", cuda) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert model_dtype("bfloat16", cuda) == "float32" and model_dtype("float16", cuda) == "float16"


def test_policy_evaluation_puts_the_policy_and_its_reference_on_the_job_device(tmp_path, monkeypatch):
    """eval_pairs (rules eval_ppo, eval_dpo_dr) scores a policy against pi_ref: both models are
    moved to the device job_device gives the job (a stub here, recording its calls)."""
    import core.jobs.evaluate as evaluate
    from core.data import rows_to_dataset, write_pairs

    tok = tiny_tokenizer()
    for name, seed in (("policy", 1), ("ref", 0)):
        tiny_lm(seed).save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    data = tmp_path / "id.parquet"
    write_pairs(rows_to_dataset([{**r, "source": "s"} for r in ROWS]), data)
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"extra": {"run_id": "r0"}}))
    job = _job(0, input={"model": str(tmp_path / "policy"), "train": str(train), "id": str(data),
                         "reference": str(tmp_path / "ref")},
               output={"id": str(tmp_path / "out" / "id.json")},
               params={"kind": "policy", "benches": {"id": {"kind": "pairs", "label": "ID"}},
                       "eval": {"batch_size": 4, "max_length": 64, "ties": "wrong",
                                "degenerate_std": 1e-6}})  # fmt: skip
    asked, moved = [], []
    monkeypatch.setattr(evaluate, "job_device", lambda j: asked.append(j.rule) or torch.device("cpu"))
    real_to = torch.nn.Module.to

    def spy(self, *args, **kwargs):
        if args and isinstance(args[0], torch.device):
            moved.append((type(self).__name__, args[0]))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy)
    evaluate.eval_pairs(job)
    assert asked == ["eval_dpo_dr"]
    assert moved == [("LlamaForCausalLM", torch.device("cpu"))] * 2  # the policy and pi_ref
    metrics = json.loads((tmp_path / "out" / "id.json").read_text())["metrics"]
    assert set(metrics) >= {"likelihood", "implicit"}


def test_concurrent_jobs_of_one_machine_claim_their_own_gpus(tmp_path, monkeypatch):
    """profiles/local: a job without CUDA_VISIBLE_DEVICES claims free GPUs by lock file (another
    process holding GPU 0 here), sets CUDA_VISIBLE_DEVICES to them, and fails naming its rule when
    the machine has too few or none comes free; a scheduler's CUDA_VISIBLE_DEVICES stands."""
    import os
    import subprocess
    import sys

    from core.jobs.gpus import claim_gpus, free_port, release_gpus

    monkeypatch.setenv("ROBUST_RLHF_GPUS", "0,1")
    monkeypatch.setenv("ROBUST_RLHF_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    hold = ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print(1, flush=True); time.sleep(60)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "gpu0.lock")], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        holder.stdout.readline()
        assert claim_gpus(1, "rule train_ppo") == ["1"] and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
        release_gpus()
        with pytest.raises(RuntimeError, match=r"rule train_dpo_dr: no 2 free GPU\(s\) of \['0', '1'\]"):
            claim_gpus(2, "rule train_dpo_dr", wait=0)
    finally:
        holder.kill()
        holder.wait()
    assert claim_gpus(2, "rule train_dpo_dr") == ["0", "1"]  # the holder exited: its GPU is free
    release_gpus()
    with pytest.raises(RuntimeError, match=r"rule sft: asks for 3 GPU\(s\) but this machine has 2"):
        claim_gpus(3, "rule sft")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # SLURM's (or the user's) choice
    assert claim_gpus(1, "rule sft") == [] and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert 0 < free_port() < 65536


def test_run_job_starts_a_gpu_job_on_its_claimed_gpu(tmp_path, monkeypatch):
    """core.jobs.run.run_job claims the job's GPUs before its function runs (before torch starts
    CUDA), so the job function sees only its own CUDA_VISIBLE_DEVICES."""
    import os

    from core.jobs.gpus import release_gpus
    from core.jobs.run import run_job

    monkeypatch.setenv("ROBUST_RLHF_GPUS", "3")
    monkeypatch.setenv("ROBUST_RLHF_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    seen = []
    try:
        run_job(lambda job: seen.append(os.environ.get("CUDA_VISIBLE_DEVICES")), _job(1, rule="train_ppo"))
    finally:
        release_gpus()
    assert seen == ["3"]
    run_job(lambda job: seen.append(os.environ.get("CUDA_VISIBLE_DEVICES")), _job(0))
    assert seen == ["3", None]  # a CPU job claims nothing
