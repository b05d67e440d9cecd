"""The report jobs of the workflow, one per rule: a paper table (:func:`table`), a figure
(:func:`figure`), the claims table (:func:`claims`) and the document (:func:`report`), each from
the typed spec its rule's params carry (core.report.spec_types) and the metrics files it names."""

from __future__ import annotations

import os

from core.jobs.job import Job
from core.jobs.metrics import tracked_run
from core.report.spec_types import from_data


def table(job: Job) -> None:
    """Rule ``table``: one paper table as CSV + Markdown (core.report.tables), with seed counts,
    95% intervals (over seeds, or a file's bootstrap interval) and the MLflow run ids of its rows."""
    from core.report.tables import write_table

    write_table(from_data(job.params["spec"]), job.out("csv"), job.out("md"))


def figure(job: Job) -> None:
    """Rule ``figure``: one figure as PNG (core.report.figures), from the same metrics files and
    table spec as its data table."""
    import matplotlib

    matplotlib.use("Agg")
    from core.report.figures import make_figure

    make_figure(from_data(job.params["spec"]), job.out("0"))


def claims(job: Job) -> None:
    """Rule ``claims``: per claim of both papers the paper's number, the measured effect (positive
    = the paper's direction), its 95% interval, the seeds, the verdict and its flags (core.report.claims)."""
    from core.report.claims import write_claims

    write_claims(from_data(job.params["cells"]), from_data(job.params["gates"]), job.out("csv"), job.out("md"))


def report(job: Job) -> None:
    """Rule ``report``: every table and figure of both papers and the theory experiments in one
    document (``report.md`` + a self-contained ``report.html``), and one MLflow run holding them
    all as artifacts."""
    from core.report.report import write_report

    name = job.params["name"]
    intro = (
        f"Config `{name}`. Every number below is read from `results/{name}/metrics/**/*.json`; each table "
        "lists the MLflow run ids of the jobs behind its rows (browse them with "
        "`mlflow ui --backend-store-uri <tracking uri>`), the number of seeds, and 95% intervals "
        "where more than one seed ran (or a bootstrap interval for oracle advantages)."
    )
    with tracked_run(job) as run:
        title = f"robust-rlhf: both papers' tables and figures ({name})"
        write_report(job.out("md"), job.out("html"), title, intro, job.params["sections"])
        for key in ("claims", "tables", "csvs", "figures", "theory"):
            for path in job.inputs(key):
                run.log_artifact(path, os.path.dirname(os.path.relpath(path, os.path.dirname(job.out("md")))))
        run.log_artifact(job.out("md"))
        run.log_artifact(job.out("html"))
