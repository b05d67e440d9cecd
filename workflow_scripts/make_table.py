"""Rule `table`: one paper table as CSV + Markdown (core.report.tables); every number is read
from the metrics files the spec names (the rule's inputs), with seed counts, 95% intervals
(where more than one seed ran, or a bootstrap interval) and the MLflow run ids."""

from core.jobs.job import Job
from core.jobs.launch import entrypoint


def main(job: Job) -> None:
    from core.report.tables import write_settings_table, write_table

    spec = job.params["spec"]
    if spec.get("kind") == "settings":
        write_settings_table(spec, job.out("csv"), job.out("md"))
    else:
        write_table(spec, job.out("csv"), job.out("md"))


if __name__ == "__main__":
    entrypoint(main, globals())
