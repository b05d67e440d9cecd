"""A training job's checkpoints, the one owner of their folders, markers and verification, and of
the seed stash.

A training job writes ``checkpoint-<step>`` folders every ``train.save_steps`` steps (default: a
tenth of its budget; core.jobs.trainer_setup.checkpoint_args) into its own folder
``results/<config>/checkpoints/<model path>`` (:func:`checkpoint_dir`; outside Snakemake's outputs,
so removing a failed job's outputs keeps them), keeping the newest ``train.save_total_limit``
(default 2). Each complete checkpoint gets :data:`COMPLETE_MARKER` once the trainer has written
all of it (:func:`complete_checkpoints_callback`); a rerun resumes from the newest checkpoint that
has it and passes :func:`verified_checkpoint` (optimiser, scheduler, RNG, robust-weight state and
iterate averages are the trainers' own checkpoint contents). A job over several seeds keeps each
finished seed's outputs in the :data:`FINISHED` stash of its checkpoint folder
(:func:`keep_finished_outputs`), so a rerun after a later seed died restores them instead of
retraining. The folders are removed when the whole job has succeeded (:func:`remove_checkpoints`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.jobs.job import rank

if TYPE_CHECKING:
    from core.jobs.job import Job

#: written into a checkpoint (or the finished-outputs stash) after all of it was written
COMPLETE_MARKER = ".complete"
#: where a finished seed's outputs wait, inside its checkpoint folder, until its whole job succeeds
FINISHED = "finished"
#: transformers' checkpoint folders (``PREFIX_CHECKPOINT_DIR``; not imported: job processes stay torch-free)
CHECKPOINT = re.compile(r"^checkpoint-(?P<step>[0-9]+)$")
#: checkpoints kept (the newest ones) unless the config's train block says otherwise
SAVE_TOTAL_LIMIT = 2


def checkpoint_dir(model_out: str) -> str:
    """A training job's checkpoint folder: ``results/<config>/checkpoints/<model path>`` for a
    model written to ``results/<config>/models/<model path>`` (else ``<model_out>.checkpoints``):
    outside Snakemake's outputs, so removing a failed job's outputs keeps its checkpoints."""
    head, sep, tail = model_out.rpartition("/models/")
    return f"{head}/checkpoints/{tail}" if sep else f"{model_out}.checkpoints"


def verified_checkpoint(folder: str) -> str | None:
    """Why ``folder`` is not a usable checkpoint (None when it is): the completion marker, a
    ``trainer_state.json`` whose ``global_step`` is the folder's step, and model weights."""
    m = CHECKPOINT.match(os.path.basename(folder.rstrip("/")))
    if m is None:
        return "not a checkpoint-<step> folder"
    if not os.path.isfile(os.path.join(folder, COMPLETE_MARKER)):
        return "incomplete (no completion marker: the job died while writing it)"
    try:
        with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as fh:
            step = int(json.load(fh)["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable trainer_state.json ({exc})"
    if step != int(m["step"]):
        return f"trainer_state.json says step {step}"
    weights = [f for f in os.listdir(folder) if f.endswith((".safetensors", ".bin"))]
    return None if weights else "no model weights"


def latest_checkpoint(folder: str) -> str | None:
    """The newest checkpoint under ``folder`` that :func:`verified_checkpoint` accepts (rejected
    newer ones are reported on stdout, the job's log); None when there is none."""
    if not os.path.isdir(folder):
        return None
    found = [(int(m["step"]), name) for name in os.listdir(folder) if (m := CHECKPOINT.match(name))]
    for _, name in sorted(found, reverse=True):
        path = os.path.join(folder, name)
        why = verified_checkpoint(path)
        if why is None:
            return path
        print(f"[checkpoint] skipping {path}: {why}", flush=True)
    return None


def checkpoint_step(path: str) -> int:
    m = CHECKPOINT.match(os.path.basename(path.rstrip("/")))
    if m is None:
        raise ValueError(f"{path} is not a checkpoint-<step> folder")
    return int(m["step"])


def complete_checkpoints_callback() -> Any:
    """A ``transformers.TrainerCallback`` that marks each checkpoint complete once it is written."""
    from transformers import TrainerCallback

    class CompleteCheckpoints(TrainerCallback):
        """Writes :data:`COMPLETE_MARKER` into ``checkpoint-<step>`` after the trainer saved it
        (``on_save`` runs after the model, optimiser, scheduler, RNG and state files)."""

        def on_save(self, args, state, control, **kwargs):  # noqa: D401 - transformers hook
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if rank() == 0 and os.path.isdir(folder):
                with open(os.path.join(folder, COMPLETE_MARKER), "w", encoding="utf-8") as fh:
                    fh.write(f"{state.global_step}\n")
            return control

    return CompleteCheckpoints()


def _outputs(job: Job) -> list[tuple[str, str]]:
    return [(k, p) for k, v in job.output.items() for p in ([v] if isinstance(v, str) else v)]


def keep_finished_outputs(job: Job) -> None:
    """Copy a finished seed's outputs into its checkpoint folder (a later seed of the same job may
    die, and Snakemake then removes every output of the job before the rerun)."""
    keep = os.path.join(checkpoint_dir(job.out("model")), FINISHED)
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    for name, path in _outputs(job):
        (shutil.copytree if os.path.isdir(path) else shutil.copy2)(path, os.path.join(keep, name))
    Path(keep, COMPLETE_MARKER).write_text("done\n", encoding="utf-8")


def finished_outputs_kept(job: Job) -> bool:
    return os.path.isfile(os.path.join(checkpoint_dir(job.out("model")), FINISHED, COMPLETE_MARKER))


def restore_finished_outputs(job: Job) -> None:
    """Put back the outputs a killed attempt had finished for this seed (:func:`keep_finished_outputs`)."""
    keep = os.path.join(checkpoint_dir(job.out("model")), FINISHED)
    for name, path in _outputs(job):
        if os.path.lexists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        src = os.path.join(keep, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, path)
    print(f"[checkpoint] {job.run_name}: restored the outputs an earlier attempt finished ({keep})", flush=True)


def remove_checkpoints(views: list[Job]) -> None:
    """Remove the checkpoint folders of a job's seeds (and their parents, while they are empty)."""
    for one in views:
        folder = checkpoint_dir(one.out("model"))
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.removedirs(os.path.dirname(folder))
