"""Rule `load_dataset`: a hub id or local file in its native format -> the normalised schema
(core.data.load_preferences), bad rows failing or dropped with a count as the config says.
``bigbench:<path>`` names a path inside the BIG-bench tasks, fetched once per machine from the
``bigbench`` sdist on PyPI (core.data.fetch_bigbench_tasks)."""

from core.data.io import write_pairs
from core.pipeline.job import Job, entrypoint, tracked_run, write_json

BIGBENCH_PREFIX = "bigbench:"


def main(job: Job) -> None:
    from core.data import load_preferences, subsample

    spec = job.params["spec"]
    source = spec["source"]
    if source.startswith(BIGBENCH_PREFIX):
        from core.data import fetch_bigbench_tasks

        source = str(fetch_bigbench_tasks() / source[len(BIGBENCH_PREFIX) :].lstrip("/"))
    with tracked_run(job) as run:
        ds, report = load_preferences(
            source,
            spec["format"],
            spec.get("split"),
            hub_name=spec.get("hub_name"),
            on_bad_rows=job.params["on_bad_rows"],
            return_report=True,
            **dict(spec.get("options") or {}),
        )
        if spec.get("max_rows") and len(ds) > int(spec["max_rows"]):
            ds = subsample(ds, int(spec["max_rows"]), seed=0)
        write_pairs(ds, job.out("0"))
        info = report.to_dict()
        write_json(job.out("0") + ".report.json", info)
        run.log_metrics(
            {
                "rows": len(ds),
                "records": report.n_records,
                "ties": report.n_ties,
                "dropped": report.n_dropped,
                "skipped": report.n_skipped,
            }
        )


if __name__ == "__main__":
    entrypoint(main, globals())
