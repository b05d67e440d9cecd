"""Rule `tokenizer`: the embedded default's tokenizer, trained on the world's corpus
(core.models.build_tokenizer: byte-level BPE or word-level, with the chat template)."""

import json

from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.models import build_tokenizer, load_tokenizer

    cfg = job.params["cfg"]
    with open(job.inp("corpus"), encoding="utf-8") as fh:
        texts = [json.loads(line) for line in fh if line.strip()]
    with tracked_run(job) as run:
        out = build_tokenizer(
            texts,
            int(cfg.get("vocab_size", 512)),
            job.out("0"),
            kind=cfg.get("kind", "bpe"),
            min_frequency=int(cfg.get("min_frequency", 2)),
        )
        run.log_metrics({"vocab_size": len(load_tokenizer(out)), "corpus_texts": len(texts)})


if __name__ == "__main__":
    entrypoint(main, globals())
