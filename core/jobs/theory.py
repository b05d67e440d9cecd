"""The theory job (rule ``theory``): one experiment of core.theory (docs/design.md §1.4; DR paper
Algorithms 1-3, the distillation paper's bandit and bag-of-words analyses), ``run(config, seed)
-> table and summary`` and ``plot(result, figure)``: the table as CSV + Markdown, the summary (the
headline numbers: fitted slopes, gaps, ratios) as a metrics file, all logged to MLflow."""

from __future__ import annotations

from core.jobs.job import Job
from core.jobs.metrics import log_metrics_file, tracked_run, write_job_metrics


def theory(job: Job) -> None:
    """Run the experiment ``wildcards.exp`` with the rule's config and seed; an unknown name is refused."""
    from core.theory import EXPERIMENTS, write_table

    name = job.wildcards["exp"]
    if name not in EXPERIMENTS:
        raise ValueError(f"theory.experiments: unknown experiment {name!r} (known: {sorted(EXPERIMENTS)})")
    exp, seed = EXPERIMENTS[name], int(job.params["seed"])
    with tracked_run(job, {"checks": exp.checks}) as run:
        result = exp.run(job.params["cfg"] or None, seed)
        write_table(result["table"], job.out("csv"), job.out("md"))
        exp.plot(result, job.out("figure"))
        write_job_metrics(job, job.out("metrics"), {"summary": result["summary"]}, model_path="none",
                          dataset_path="none", counts={"table_rows": len(result["table"])}, seed=seed,
                          run_id=run.run_id, extra={"config": result["config"], "checks": exp.checks})  # fmt: skip
        log_metrics_file(run, job.out("metrics"), result["summary"])
        for key in ("csv", "md", "figure"):
            run.log_artifact(job.out(key))
