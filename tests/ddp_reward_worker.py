"""Worker for the 2-process (gloo, CPU) DR reward-model test; also run in-process as the 1-process reference.

Usage: ``python -m torch.distributed.run --nproc_per_node 2 tests/ddp_reward_worker.py OUT_DIR``.
Every rank trains the same tiny DR reward model on a fixed, unshuffled dataset with a global
minibatch of 8 (8 / world per rank), once with one micro-batch per step and once with 2
accumulated micro-batches, and writes ``rank<r>_acc<G>.json`` (per-step records, the last step's
global weights and this rank's slice); rank 0 also writes ``final_acc<G>.safetensors``.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from trainer_helpers import dataset, make_tiny_llama, tokenizer  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3


def _trainer_class():
    from torch.utils.data import SequentialSampler

    from core.trainers.reward import DRRewardTrainer

    class SequentialDRRewardTrainer(DRRewardTrainer):
        """Unshuffled data so that the 1- and 2-process runs see the same global minibatches."""

        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    return SequentialDRRewardTrainer


def run(out_dir: str, world: int, accumulation: int = 1) -> dict:
    """Train and return ``{"history", "weights", "local", "offset", "params"}`` for this rank."""
    from core.trainers.reward import DRRewardConfig

    torch.set_num_threads(1)
    tok = tokenizer()
    model = make_tiny_llama(tok, seed=0, reward=True)
    config = DRRewardConfig(
        output_dir=out_dir,
        per_device_train_batch_size=GLOBAL_BATCH // (world * accumulation),
        gradient_accumulation_steps=accumulation,
        max_steps=STEPS,
        optim="sgd",
        learning_rate=0.05,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        ddp_backend="gloo" if world > 1 else None,
        divergence="tv",
        rho=0.3,
    )
    trainer = _trainer_class()(model=model, args=config, train_dataset=dataset(n=32), processing_class=tok)
    trainer.train()
    step = trainer.last_robust_step
    local_count = GLOBAL_BATCH // world  # all micro-batches of this rank
    return {
        "history": trainer.robust_history,
        "weights": step.weights.tolist(),
        "local": step.weights[step.offset : step.offset + local_count].tolist(),
        "offset": step.offset,
        "rank": trainer.args.process_index,
        "world": trainer.accelerator.num_processes,
        "params": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
    }


def main() -> None:
    out_dir = sys.argv[1]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    for accumulation in (1, 2):
        result = run(os.path.join(out_dir, f"acc{accumulation}"), world, accumulation)
        params = result.pop("params")
        name = f"rank{result['rank']}_acc{accumulation}.json"
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            json.dump(result, fh)
        if result["rank"] == 0:
            from safetensors.torch import save_file

            tensors = {k: v.contiguous() for k, v in params.items()}
            save_file(tensors, os.path.join(out_dir, f"final_acc{accumulation}.safetensors"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
