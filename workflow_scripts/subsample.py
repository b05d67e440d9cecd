"""Rule `subsample_dr`: the n-pair training subset of one experiment (core.jobs.data.subsample)."""

from core.jobs.data import subsample
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(subsample, globals())
