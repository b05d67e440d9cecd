"""Rule `bias_subsample`: D_bias (the paper's D_rho), n pairs of which a `bias` fraction prefer the longer response
("longer" = at least 10% more tokens under the policy's tokenizer; distillation paper §6.1)."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.data import length_bias_subsample, longer_preferred_fraction
    from core.models import load_tokenizer

    tok = load_tokenizer(job.model_source("tokenizer"))
    ds = read_pairs(job.inp("data"))
    margin = float(job.params["longer"])
    with tracked_run(job) as run:
        out = length_bias_subsample(
            ds, float(job.params["bias"]), int(job.params["n"]), tok, int(job.params["seed"]), margin=margin
        )
        write_pairs(out, job.out("0"))
        run.log_metrics(
            {
                "rows": len(out),
                "pool_longer_preferred": longer_preferred_fraction(ds, tok, margin),
                "longer_preferred": longer_preferred_fraction(out, tok, margin),
            }
        )


if __name__ == "__main__":
    entrypoint(main, globals())
