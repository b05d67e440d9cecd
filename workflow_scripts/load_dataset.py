"""Rule `load_dataset`: a hub id or local file in its native format -> the normalised schema
(core.jobs.data.load_dataset)."""

from core.jobs.data import load_dataset
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(load_dataset, globals())
