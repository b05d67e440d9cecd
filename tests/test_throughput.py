"""Throughput and memory per logging step (core.trainers.throughput): counted from the batches the
trainer reads, logged beside the run and never into the Trainer's log_history."""

from __future__ import annotations

import pytest
import torch
from trainer_helpers import dataset, reward_trainer

from core.trainers.throughput import ThroughputMeter, batch_counts, trainable_placement


def test_batch_counts_rows_and_non_padding_tokens():
    batch = {
        "input_ids_chosen": torch.ones(3, 5, dtype=torch.long),
        "attention_mask_chosen": torch.tensor([[1, 1, 1, 0, 0]] * 3),
        "attention_mask_rejected": torch.tensor([[1, 1, 0, 0, 0]] * 3),
        "margin": [0.1],
    }
    assert batch_counts(batch) == (3, 15)
    assert batch_counts({"input_ids": torch.ones(2, 4, dtype=torch.long)}) == (2, 8)
    assert batch_counts({"labels": [1, 2]}) == (0, 0)


def test_every_logging_step_gets_samples_tokens_and_peak_memory(tmp_path):
    logged, seen, tags = [], [], []
    trainer = reward_trainer(tmp_path, data=dataset(32), max_steps=4, logging_steps=1, per_device_train_batch_size=8)
    meter = ThroughputMeter(lambda metrics, step: logged.append((step, dict(metrics))), tags.append)
    meter.attach(trainer)
    inner = trainer.training_step
    trainer.training_step = lambda model, inputs, n=None: seen.append(batch_counts(inputs)) or inner(model, inputs, n)
    trainer.train()
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    rates = [m for _, m in logged]
    assert all(set(m) == {"perf/samples_per_s", "perf/tokens_per_s", "perf/peak_memory_gib", "perf/s_per_step"}
               for m in rates)  # fmt: skip
    assert all(m["perf/s_per_step"] > 0 for m in rates)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert meter.placement == {"cpu float32": trainable}  # where every trainable parameter lives
    assert tags == [{"perf.trainable": f"cpu float32: {trainable:,}"}]
    assert all(m["perf/samples_per_s"] > 0 and m["perf/peak_memory_gib"] > 0 for m in rates)
    rows, tokens = zip(*seen, strict=True)
    assert set(rows) == {16}  # 8 pairs per step: trl collates chosen and rejected as 16 sequences
    ratio = [m["perf/tokens_per_s"] / m["perf/samples_per_s"] for m in rates]
    assert ratio == pytest.approx([t / r for r, t in seen], rel=1e-9)  # tokens per pair of each step
    assert not any(k.startswith("perf/") for entry in trainer.state.log_history for k in entry)


def test_placement_counts_trainable_parameters_by_device_and_dtype():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1).to(torch.bfloat16))
    model[0].bias.requires_grad_(False)
    assert trainable_placement(model) == {"cpu bfloat16": 3, "cpu float32": 6}


def test_phases_and_notes_are_per_interval():
    logged = []
    meter = ThroughputMeter(lambda metrics, step: logged.append((step, dict(metrics))))
    state = type("State", (), {"global_step": 0})()
    meter.on_train_begin(None, state, None)
    for step, share in ((1, 0.5), (2, 1.0)):
        with meter.phase("rollout"):
            torch.ones(200, 200).matmul(torch.ones(200, 200))
        meter.count(4, 40)
        meter.note("stopped_share", share)
        meter.note("stopped_share", 0.0)
        state.global_step = step
        meter.on_log(None, state, None)
    assert [s for s, _ in logged] == [1, 2]
    assert [m["perf/stopped_share"] for _, m in logged] == [0.25, 0.5]  # the mean of the interval's notes
    assert all(0 < m["perf/rollout_s"] <= m["perf/s_per_step"] for _, m in logged)  # its share of the step
