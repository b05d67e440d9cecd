"""Rule `theory`: one experiment of core.theory (core.jobs.theory.theory)."""

from core.jobs.launch import entrypoint
from core.jobs.theory import theory

if __name__ == "__main__":
    entrypoint(theory, globals())
