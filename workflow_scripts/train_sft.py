"""Rule `sft`: the reference policy pi_ref (distillation paper §6.1: pi_SFT) — supervised
fine-tuning of the base LM with trl's SFTTrainer on prompt/completion demonstrations (or on the
preferred responses of a preference set), loss on completion tokens only."""

from core.jobs.launch import entrypoint
from core.jobs.train import train_sft

if __name__ == "__main__":
    entrypoint(train_sft, globals())
