"""Rule `filter_sources`: drop (exclude) or keep (include) whole sources of the training pool —
the DR paper's "no hh-rlhf" / "no chatbot_arena_conversations" variants (Table 8). A variant
that names a source the pool lacks, or keeps no row, fails naming the variant."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.data import filter_sources

    spec = job.params["spec"]
    ds = read_pairs(job.inp("0"))
    with tracked_run(job) as run:
        variant = job.wildcards["variant"]
        out = filter_sources(
            ds,
            include=spec.get("include"),
            exclude=spec.get("exclude") or [],
            what=f"variant {variant!r} (config key data.variants.{variant})",
        )
        write_pairs(out, job.out("0"))
        run.log_metrics({"rows_in": len(ds), "rows_out": len(out)})


if __name__ == "__main__":
    entrypoint(main, globals())
