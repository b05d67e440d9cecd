"""Rule `subsample_dr`: the n-pair training subset of one experiment (core.data.subsample),
e.g. the DR paper's 400K pairs for reward models and DPO, 5K for PPO. Asking for at least as
many pairs as the split has keeps the whole split."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.data import subsample

    ds = read_pairs(job.inp("0"))
    n = int(job.params["n"])
    with tracked_run(job) as run:
        out = ds if n >= len(ds) else subsample(ds, n, seed=int(job.params["seed"]))
        write_pairs(out, job.out("0"))
        run.log_metrics({"rows_in": len(ds), "rows_out": len(out)})


if __name__ == "__main__":
    entrypoint(main, globals())
