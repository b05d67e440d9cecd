"""Rule `tokenizer`: the embedded default's tokenizer, trained on the world's corpus
(core.jobs.build.tokenizer)."""

from core.jobs.build import tokenizer
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(tokenizer, globals())
