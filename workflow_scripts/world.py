"""Rule `world`: the embedded default's synthetic world (core.data.synthetic) as raw datasets.

Writes the generator's splits under the workflow's raw-dataset names (pool = the BT-labelled
training mixture, world_test, world_eval, sft, prompts), the tokenizer corpus and the backbone's
pretraining corpus (one JSON string per line; core.data.synthetic.pretraining_corpus), and the
oracle's settings (the known reward r*(x, y) that relabels pairs and scores samples in the
distillation experiments).
"""

import json

from core.data.io import write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import log_metrics_file, tracked_run, write_json
from core.plan.paths import WORLD_DATASETS


def main(job: Job) -> None:
    from core.atomic import atomic_write_text
    from core.data.synthetic import WorldConfig, generate_world, pretraining_corpus, world_corpus

    cfg = WorldConfig.from_dict(job.params["cfg"])
    seed = int(job.params["seed"])
    with tracked_run(job) as run:
        world = generate_world(cfg, seed=seed)
        for name, split in WORLD_DATASETS.items():
            write_pairs(world[split], job.out(name))
        texts = world_corpus(world)
        atomic_write_text(job.out("corpus"), "".join(json.dumps(t) + "\n" for t in texts))
        pretrain = pretraining_corpus(world)
        atomic_write_text(job.out("pretrain_corpus"), "".join(json.dumps(t) + "\n" for t in pretrain))
        counts = {name: len(world[split]) for name, split in WORLD_DATASETS.items()}
        write_json(
            job.out("oracle"),
            {
                "kind": "synthetic",
                "oracle": cfg.to_dict()["oracle"],
                "world": cfg.to_dict(),
                "seed": seed,
                "counts": counts,
            },
        )
        log_metrics_file(
            run, job.out("oracle"), {"rows": counts, "corpus_texts": len(texts), "pretrain_texts": len(pretrain)}
        )


if __name__ == "__main__":
    entrypoint(main, globals())
