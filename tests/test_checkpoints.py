"""Checkpoint folders, their verification and the resume point (core.jobs.trainer_setup), and the
seed bookkeeping of a job over several seeds (core.jobs.job)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from core.jobs.checkpoints import COMPLETE_MARKER, checkpoint_dir, latest_checkpoint, verified_checkpoint
from core.jobs.job import Job
from core.jobs.run import _run_seeds
from core.jobs.trainer_setup import checkpoint_args, mean_logged_loss, ppo_checkpoint_args


def checkpoint(root, step, *, marker=True, state_step=None, weights=True):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step if state_step is None else state_step}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"x")
    if marker:
        (folder / COMPLETE_MARKER).write_text(f"{step}\n")
    return folder


def test_checkpoint_folder_lives_outside_the_outputs():
    assert checkpoint_dir("results/x/models/dr/rm/u/tv/rho0.2/seed3") == "results/x/checkpoints/dr/rm/u/tv/rho0.2/seed3"
    assert checkpoint_dir("/tmp/out/model") == "/tmp/out/model.checkpoints"


def test_only_a_complete_and_consistent_checkpoint_is_resumed(tmp_path, capsys):
    assert latest_checkpoint(str(tmp_path / "none")) is None
    good = checkpoint(tmp_path, 3)
    checkpoint(tmp_path, 6, marker=False)  # killed while writing it
    checkpoint(tmp_path, 9, state_step=7)  # a state from another step
    checkpoint(tmp_path, 12, weights=False)
    assert latest_checkpoint(str(tmp_path)) == str(good)
    out = capsys.readouterr().out
    assert "checkpoint-12: no model weights" in out and "checkpoint-9: trainer_state.json says step 7" in out
    assert "checkpoint-6: incomplete" in out
    assert verified_checkpoint(str(good)) is None
    assert "not a checkpoint" in verified_checkpoint(str(tmp_path))


def test_checkpoint_interval_is_a_tenth_of_the_budget_on_the_logging_grid():
    job = Job(rule="r", input={}, output={}, params={"train": {"max_steps": 160, "logging_steps": 10}}, wildcards={})
    from core.trainers.reward import DRRewardConfig

    assert checkpoint_args(job, DRRewardConfig, 2000) == {"save_strategy": "steps", "save_steps": 20,
                                                         "save_total_limit": 2}  # fmt: skip
    job.params["train"].update(save_steps=7, save_total_limit=5)
    assert checkpoint_args(job, DRRewardConfig, 2000)["save_steps"] == 7
    ppo = ppo_checkpoint_args({"total_episodes": 256, "per_device_train_batch_size": 16})
    assert ppo["save_steps"] == 1 and ppo["save_strategy"] == "steps"  # 16 updates: every update


def test_mean_logged_loss_weights_each_window_by_its_steps():
    history = [{"loss": 1.0, "step": 10}, {"eval_loss": 9.0, "step": 10}, {"loss": 0.5, "step": 15}]
    assert mean_logged_loss(history) == pytest.approx((10 * 1.0 + 5 * 0.5) / 15)
    assert math.isnan(mean_logged_loss([{"eval_loss": 1.0, "step": 2}]))


def test_a_finished_seed_is_restored_and_not_trained_again(tmp_path):
    """A job over two seeds whose second seed died: the rerun puts back the first seed's outputs
    (kept in its checkpoint folder) without calling the trainer, trains the second, and removes
    every checkpoint folder once both have succeeded."""
    root = tmp_path / "results/x"
    out = {}
    for s in (0, 1):
        out[f"model_seed{s}"] = str(root / "models" / f"m/seed{s}")
        out[f"metrics_seed{s}"] = str(root / "metrics" / f"m/seed{s}.json")
    job = Job(rule="r", input={}, output=out, params={"seeds": [0, 1]}, wildcards={})
    trained, die = [], [True]

    def train(view: Job) -> None:
        if view.params["seed"] == 1 and die[0]:
            raise RuntimeError("killed")
        trained.append(view.params["seed"])
        model = root / "models" / f"m/seed{view.params['seed']}"
        model.mkdir(parents=True, exist_ok=True)
        (model / "w").write_text(f"weights {view.params['seed']}")
        (root / "metrics" / "m").mkdir(parents=True, exist_ok=True)
        (root / "metrics" / f"m/seed{view.params['seed']}.json").write_text("{}")

    with pytest.raises(RuntimeError):
        _run_seeds(train, job)
    assert (root / "checkpoints/m/seed0/finished/.complete").exists()
    shutil.rmtree(root / "models")  # Snakemake removes a failed job's outputs before the rerun
    shutil.rmtree(root / "metrics")
    assert trained == [0]
    die[0] = False
    _run_seeds(train, job)
    assert trained == [0, 1]  # on the rerun seed 0 is restored, not trained
    assert (root / "models/m/seed0/w").read_text() == "weights 0" and (root / "metrics/m/seed0.json").exists()
    assert not (root / "checkpoints").exists()
