"""A killed training job resumes: SIGKILL the whole workflow while a reward-model job
over two seeds trains its second seed (after that seed's first checkpoint), rerun it, and the
final models and metrics equal an uninterrupted run's (CPU, same seeds); the first seed is not
retrained, the second resumes from its checkpoint, and no checkpoint folder is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_workflow import REPO, SNAKEMAKE, VENV_BIN, smoke_config, snakemake, write_config

RM = "dr/rm/no-hh-rlhf/none/rho0"


def resume_config(tmp: Path) -> Path:
    cfg = smoke_config()
    cfg["seeds"] = [0, 1]
    cfg["dr"]["reward"]["train"].update(max_steps=12, save_steps=3, logging_steps=3, eval_steps=3)
    return write_config(tmp / "resume.yaml", cfg)


def targets() -> list[str]:
    return [f"results/smoke/metrics/{RM}/seed{s}/train.json" for s in (0, 1)]


def outputs(workdir: Path) -> dict:
    out = {}
    for s in (0, 1):
        metrics = json.loads((workdir / f"results/smoke/metrics/{RM}/seed{s}/train.json").read_text())["metrics"]
        weights = load_file(workdir / f"results/smoke/models/{RM}/seed{s}/model.safetensors")
        out[s] = (metrics, weights)
    return out


def run_and_kill(workdir: Path, config: Path, marker: Path, timeout: float = 300) -> None:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1", *targets(),
           "--configfile", str(config)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    start = time.time()
    try:
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the workflow ended (rc {proc.returncode}) before {marker} appeared")
            if time.time() - start > timeout:
                pytest.fail(f"{marker} did not appear within {timeout} s")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_killed_training_job_resumes_to_the_uninterrupted_result(tmp_path):
    config = resume_config(tmp_path)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    r = snakemake(clean, "--cores", "1", *targets(), "--configfile", str(config))
    assert r.returncode == 0, r.stderr[-3000:]
    checkpoints = killed / "results/smoke/checkpoints" / RM
    run_and_kill(killed, config, checkpoints / "seed1/checkpoint-3/.complete")
    assert (checkpoints / "seed0/finished/.complete").exists()  # the first seed had finished

    assert snakemake(killed, "--unlock", "--configfile", str(config)).returncode == 0
    r = snakemake(killed, "--cores", "1", *targets(), "--rerun-incomplete", "--configfile", str(config))
    assert r.returncode == 0, r.stderr[-3000:]
    log = (killed / f"results/smoke/logs/{RM}/seeds.log").read_text()
    assert "restored the outputs an earlier attempt finished" in log
    assert "[checkpoint] resumed from step " in log
    assert not (killed / "results/smoke/checkpoints").exists()  # removed, with its empty parents
    attempts = (killed / f"results/smoke/logs/{RM}/seeds.log.attempts").read_text()
    assert attempts.count("started") == 2 and "resumed from step" in attempts  # the killed attempt's log is kept

    want, got = outputs(clean), outputs(killed)
    for s in (0, 1):
        (m_want, w_want), (m_got, w_got) = want[s], got[s]
        assert set(w_want) == set(w_got)
        for name in w_want:
            assert (w_want[name] - w_got[name]).abs().max().item() <= 1e-6, (s, name)
        assert m_got["steps"] == m_want["steps"] == 12
        assert m_got["train_loss"] == pytest.approx(m_want["train_loss"], rel=1e-6)
        for key in ("eval_loss", "loss"):
            assert m_got["curves"][key]["step"] == m_want["curves"][key]["step"], key
            assert m_got["curves"][key]["value"] == pytest.approx(m_want["curves"][key]["value"], rel=1e-6), key
