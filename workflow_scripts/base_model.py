"""Rule `base_model`: the base policy LM or reward model as an ordinary HF folder
(core.jobs.build.base_model)."""

from core.jobs.build import base_model
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(base_model, globals())
