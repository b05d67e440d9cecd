"""Rule `relabel`: every pair relabelled by the oracle (distillation paper §6.1; core.jobs.data.relabel)."""

from core.jobs.data import relabel
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(relabel, globals())
