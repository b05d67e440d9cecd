"""Rule `sample_sft`: oracle reward of the SFT policy's samples on the held-out validation and test
prompts (distillation paper §6) — the baseline of every distillation policy's advantage, which the
`train_distill_policy` jobs score in their own process."""

from core.jobs.evaluate import sample_sft
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(sample_sft, globals())
