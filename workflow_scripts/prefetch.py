"""Rule `prefetch`: every hub model of the config, downloaded once into the Hugging Face cache
(core.jobs.build.prefetch)."""

from core.jobs.build import prefetch
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(prefetch, globals())
