"""Rule `ensemble_subsets`: e-DPO's D_{bias,b} subsets (distillation paper §6.1;
core.jobs.data.ensemble_subsets)."""

from core.jobs.data import ensemble_subsets
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(ensemble_subsets, globals())
