"""Rule `relabel`: relabel every pair with the oracle (distillation paper §6.1): chosen = the
response with the higher oracle reward, exact ties dropped; the flip rate is recorded. Only the
normalised columns are kept (core.data.oracle_relabel rebuilds the schema's features)."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import log_metrics_file, tracked_run, write_job_metrics
from core.jobs.run import set_torch_threads


def main(job: Job) -> None:
    from core.data import NORMALISED_COLUMNS, longer_preferred_fraction, oracle_relabel
    from core.eval.oracle import load_oracle

    set_torch_threads(job)
    ds = read_pairs(job.inp("data"))
    ds = ds.select_columns([c for c in NORMALISED_COLUMNS if c in ds.column_names])
    scorer = load_oracle(
        job.inp("oracle"),
        job.params["oracle"]["kind"],
        int(job.params["eval"]["batch_size"]),
        int(job.params["eval"]["max_length"]),
    )
    with tracked_run(job) as run:
        out, flip_rate, ties = oracle_relabel(ds, scorer, batch_size=int(job.params["eval"]["batch_size"]))
        write_pairs(out, job.out("data"))
        metrics = {
            "flip_rate": flip_rate,
            "ties_dropped": ties,
            "rows_in": len(ds),
            "rows_out": len(out),
            "longer_preferred_fraction_words": longer_preferred_fraction(out, str.split),
        }
        write_job_metrics(
            job,
            job.out("metrics"),
            metrics,
            model_path=job.inp("oracle"),
            dataset_path=job.inp("data"),
            counts={"pairs": len(out), "ties": int(ties)},
            seed=0,
            run_id=run.run_id,
        )
        log_metrics_file(run, job.out("metrics"), metrics)


if __name__ == "__main__":
    entrypoint(main, globals())
