"""Rule `load_dataset`: a hub id or local file in its native format -> the normalised schema
(core.data.load_preferences), bad rows failing or dropped as the config says (``data.on_bad_rows``,
at most ``data.max_drop_fraction`` of the records; no pair kept is always an error). Outputs: the
pairs, ``<pairs>.report.json`` (the counts) and ``<pairs>.dropped.jsonl`` (every dropped row's file,
line and reason). A refused load writes its bad rows to ``<log>.dropped.jsonl`` instead, since
Snakemake removes a failed job's outputs but keeps its log folder.
``bigbench:<path>`` names a path inside the BIG-bench tasks, fetched once per machine from the
``bigbench`` sdist on PyPI (core.data.fetch_bigbench_tasks)."""

from core.data.io import write_dropped_rows, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run, write_json

BIGBENCH_PREFIX = "bigbench:"


def main(job: Job) -> None:
    from core.data import LoadError, load_preferences, subsample

    spec = job.params["spec"]
    source = spec["source"]
    if source.startswith(BIGBENCH_PREFIX):
        from core.data import fetch_bigbench_tasks

        source = str(fetch_bigbench_tasks() / source[len(BIGBENCH_PREFIX) :].lstrip("/"))
    with tracked_run(job) as run:
        try:
            ds, report = load_preferences(
                source,
                spec["format"],
                spec.get("split"),
                hub_name=spec.get("hub_name"),
                on_bad_rows=job.params["on_bad_rows"],
                max_drop_fraction=job.params["max_drop_fraction"],
                return_report=True,
                **dict(spec.get("options") or {}),
            )
        except LoadError as err:
            if job.log:
                print(f"every bad row: {write_dropped_rows(err.report, job.log[0] + '.dropped.jsonl')}", flush=True)
            raise
        if spec.get("max_rows") and len(ds) > int(spec["max_rows"]):
            ds = subsample(ds, int(spec["max_rows"]), seed=0)
        write_pairs(ds, job.out("data"))
        write_json(job.out("report"), report.to_dict())
        write_dropped_rows(report, job.out("dropped"))
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
