"""Rule `world`: the embedded default's synthetic world as raw datasets (core.jobs.build.world)."""

from core.jobs.build import world
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(world, globals())
