"""Rule `table`: one paper table as CSV + Markdown (core.report.tables); every number is read
from the metrics files the spec names (the rule's inputs), with seed counts, 95% intervals
(where more than one seed ran, or a bootstrap interval) and the MLflow run ids."""

from core.jobs.job import Job
from core.jobs.launch import entrypoint


def main(job: Job) -> None:
    from core.report.spec_types import from_data
    from core.report.tables import write_table

    write_table(from_data(job.params["spec"]), job.out("csv"), job.out("md"))


if __name__ == "__main__":
    entrypoint(main, globals())
