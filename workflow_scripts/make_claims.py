"""Rule `claims`: the claims table (core.report.claims) — per claim of both papers the paper's
number, the measured effect (positive = the paper's direction), its 95% interval over seeds, the
seed count, a verdict computed from the interval, and the flags (degenerate models, failed sanity
gates) it rests on."""

from core.jobs.job import Job
from core.jobs.launch import entrypoint


def main(job: Job) -> None:
    from core.report.claims import write_claims
    from core.report.spec_types import from_data

    write_claims(from_data(job.params["cells"]), from_data(job.params["gates"]), job.out("csv"), job.out("md"))


if __name__ == "__main__":
    entrypoint(main, globals())
