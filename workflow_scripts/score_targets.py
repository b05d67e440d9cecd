"""Rule `score_targets`: offline target rewards of D_bias for distillation (eqs. 7 and 11;
core.jobs.data.score_targets)."""

from core.jobs.data import score_targets
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(score_targets, globals())
