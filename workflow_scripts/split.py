"""Rules `split_dr` / `split_distill`: the train/val/test split by seed (core.jobs.data.split)."""

from core.jobs.data import split
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(split, globals())
