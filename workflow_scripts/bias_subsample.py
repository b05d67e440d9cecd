"""Rule `bias_subsample`: D_bias, a `bias` share of longer-preferred pairs (distillation paper §6.1;
core.jobs.data.bias_subsample)."""

from core.jobs.data import bias_subsample
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(bias_subsample, globals())
