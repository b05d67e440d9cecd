"""Multi-process training inside one workflow job.

With ``resources.train.nproc: 2`` the training rule's script relaunches itself through
``accelerate launch`` (two gloo processes on CPU) and the DR weights are taken over the global
batch (core.dro.gather_worst_case_weights). The same DR reward-model job with one process and the
same global batch (2 x 8 = 1 x 16 pairs per optimiser step) must give the same training curve,
the same model and the same evaluation metrics, up to float round-off.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from nested import flatten
from safetensors.torch import load_file
from test_workflow import SMOKE, snakemake, write_config

RM = "results/smoke/metrics/dr/rm/no-hh-rlhf/tv/rho0.5/seed0"
MODEL = "results/smoke/models/dr/rm/no-hh-rlhf/tv/rho0.5/seed0"


def _config(nproc: int, per_device: int) -> dict:
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["resources"]["train"]["nproc"] = nproc
    train = cfg["dr"]["reward"]["train"]
    train.update(per_device_train_batch_size=per_device, max_steps=4, logging_steps=1)
    return cfg


def _run(work: Path, cfg: dict) -> str:
    work.mkdir()
    config = write_config(work / "config.yaml", cfg)
    proc = snakemake(
        work,
        "--cores",
        "2",
        f"{RM}/train.json",
        f"{RM}/rewardbench.json",
        f"{RM}/id.json",
        "--configfile",
        str(config),
        timeout=600,
    )
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}" for p in (work / "results" / "smoke" / "logs").rglob("*.log")
        )
        pytest.fail(f"workflow failed:\n{proc.stderr[-3000:]}\n{logs}")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("nproc")
    out = {}
    for nproc, per_device in ((1, 16), (2, 8)):
        _run(base / f"nproc{nproc}", _config(nproc, per_device))
        out[nproc] = base / f"nproc{nproc}"
    return out


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())["metrics"]


def _numbers(node: object) -> dict[str, float]:
    """Every number of a nested metrics dict, keyed by its path."""
    return {k: float(v) for k, v in flatten(node).items() if isinstance(v, int | float) and not isinstance(v, bool)}


def test_two_process_job_launched_through_accelerate(runs):
    log = (runs[2] / "results/smoke/logs/dr/rm/no-hh-rlhf/tv/rho0.5/seeds.log").read_text()
    assert "accelerate.commands.launch" in log and "--num_processes 2" in log
    # both ranks ran the script; the one-process job was not relaunched
    assert "rank 0 done" in log and "rank 1 done" in log
    single = (runs[1] / "results/smoke/logs/dr/rm/no-hh-rlhf/tv/rho0.5/seeds.log").read_text()
    assert "accelerate.commands.launch" not in single


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    one, two = (_metrics(runs[n] / RM / "train.json") for n in (1, 2))
    assert one["steps"] == two["steps"] == 4
    loss1, loss2 = one["curves"]["loss"]["value"], two["curves"]["loss"]["value"]
    assert len(loss1) == len(loss2) == 4
    assert loss2 == pytest.approx(loss1, rel=1e-4, abs=1e-6)
    # the loss moved, so equal curves are not two untrained models agreeing
    assert max(loss1) - min(loss1) > 1e-4
    # DR was active: the worst-case weights were far from uniform over the 16 pairs of a step
    assert one["dr"]["mean_ess"] < 8
    for key, value in one["dr"].items():
        assert two["dr"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key

    w1, w2 = (load_file(str(runs[n] / MODEL / "model.safetensors")) for n in (1, 2))
    assert sorted(w1) == sorted(w2)
    worst = max(float((w1[k].float() - w2[k].float()).abs().max()) for k in w1)
    assert worst < 1e-5, f"largest parameter difference {worst}"

    for bench in ("rewardbench", "id"):
        m1, m2 = (_metrics(runs[n] / RM / f"{bench}.json") for n in (1, 2))
        numbers1, numbers2 = _numbers(m1), _numbers(m2)
        assert numbers1, bench
        assert sorted(numbers2) == sorted(numbers1), bench
        for key, value in numbers1.items():
            # accuracies are counts, so equal; the score spread is continuous in the parameters
            tol = {"rel": 1e-3, "abs": 1e-6} if key.startswith("spread.") else {"abs": 1e-9}
            assert numbers2[key] == pytest.approx(value, **tol), f"{bench}: {key}"
