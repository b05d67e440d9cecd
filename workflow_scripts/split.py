"""Rules `split_dr` / `split_distill`: deterministic train/val/test split by seed
(core.data.split_dataset); the test split is the in-distribution evaluation set."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.data import split_dataset

    spec = job.params["spec"]
    ds = read_pairs(job.inp("0"))
    val, test = float(spec["val"]), float(spec["test"])
    with tracked_run(job) as run:
        parts = split_dataset(ds, {"train": 1.0 - val - test, "val": val, "test": test}, seed=int(spec["seed"]))
        for name in ("train", "val", "test"):
            write_pairs(parts[name], job.out(name))
        run.log_metrics({f"rows_{k}": len(parts[k]) for k in ("train", "val", "test")})


if __name__ == "__main__":
    entrypoint(main, globals())
