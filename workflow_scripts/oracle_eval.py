"""Rules `sample_sft`, `oracle_eval`: oracle reward of policy samples on held-out prompts
(distillation paper §6), with the advantage over SFT and its paired bootstrap 95% interval."""

from core.pipeline.eval_jobs import oracle_eval
from core.pipeline.job import entrypoint

if __name__ == "__main__":
    entrypoint(oracle_eval, globals())
