"""Rule `ensemble_subsets`: D_{bias,b} for every b of e-DPO's reward ensemble — subsamples of
D_bias whose longer-preferred fraction is b (distillation paper §6.1)."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.data import ensemble_subsets, longer_preferred_fraction
    from core.models import load_tokenizer

    tok = load_tokenizer(job.model_source("tokenizer"))
    ds = read_pairs(job.inp("data"))
    bs = [float(b) for b in job.params["bs"]]
    outputs = [job.output[k] for k in sorted(job.output, key=int)]
    margin = float(job.params["longer"])
    with tracked_run(job) as run:
        subsets = ensemble_subsets(
            ds, float(job.wildcards["bias"]), bs, int(job.params["n"]), tok, int(job.params["seed"]), margin=margin
        )
        for b, path in zip(bs, outputs, strict=True):
            write_pairs(subsets[b], path)
            run.log_metrics({f"longer_preferred.b{b:g}": longer_preferred_fraction(subsets[b], tok, margin)})


if __name__ == "__main__":
    entrypoint(main, globals())
