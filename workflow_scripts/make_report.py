"""Rule `report`: every table and figure of both papers and the theory experiments in one
document (results/<config name>/report.md + a self-contained report.html), and one MLflow run holding all
tables and figures as artifacts."""

import os

from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run


def main(job: Job) -> None:
    from core.report.report import write_report

    name = job.params["name"]
    intro = (
        f"Config `{name}`. Every number below is read from `results/{name}/metrics/**/*.json`; each table "
        "lists the MLflow run ids of the jobs behind its rows (browse them with "
        "`mlflow ui --backend-store-uri <tracking uri>`), the number of seeds, and 95% intervals "
        "where more than one seed ran (or a bootstrap interval for oracle advantages)."
    )
    with tracked_run(job) as run:
        write_report(
            job.out("md"),
            job.out("html"),
            f"robust-rlhf: both papers' tables and figures ({name})",
            intro,
            job.params["sections"],
        )
        for key in ("claims", "tables", "csvs", "figures", "theory"):
            for path in job.inputs(key):
                run.log_artifact(path, os.path.dirname(os.path.relpath(path, os.path.dirname(job.out("md")))))
        run.log_artifact(job.out("md"))
        run.log_artifact(job.out("html"))


if __name__ == "__main__":
    entrypoint(main, globals())
