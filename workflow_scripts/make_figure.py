"""Rule `figure`: one figure of the distillation paper as PNG (core.report.figures), drawn from
the same metrics files and table spec as its data table."""

from core.jobs.job import Job
from core.jobs.launch import entrypoint


def main(job: Job) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from core.report.figures import make_figure
    from core.report.spec_types import from_data

    make_figure(from_data(job.params["spec"]), job.out("0"))


if __name__ == "__main__":
    entrypoint(main, globals())
