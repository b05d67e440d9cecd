"""The report jobs of the workflow, one per rule: a paper table (:func:`table`), a figure
(:func:`figure`), the claims table (:func:`claims`), the label-noise ablation
(:func:`label_noise_ablation`) and the document (:func:`report`), each from the typed spec its
rule's params carry (core.report.spec_types) and the metrics files it names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def label_noise_ablation(job: Job) -> None:
    """Rule ``label_noise_ablation`` (core.report.ablation): the config's reward-model TV grid once
    more in its world without label noise, then per label temperature, benchmark and rho the
    degenerate DR seeds and the paired DR - BTL difference with its 95% interval (``json``, ``md``).

    The noise-free world is another config (``<name>-label-t0``, ``yaml``: its own world, data and
    models under ``results/<name>-label-t0/``), so its models are built by a nested Snakemake run on
    this working directory: the same rules, cached and resumed like any (``--rerun-incomplete``: a
    killed training job continues from its checkpoint), on files disjoint from this DAG's (``--nolock``:
    this Snakemake holds the directory's lock), on the job's threads (``make ablation`` gives it all
    the cores with ``--set-threads``). Why nested and not in this DAG: every rule, path and param is
    derived from one config (core.plan.Pipeline of ``config``); the noise-free world needs its own
    whole chain (world, splits, tokenizer, pretraining, SFT, reward models, evaluation) under its own
    config, which the rules would otherwise have to take as a second, per-job config, a change to every
    rule for one experiment. Nested, the noise-free jobs are the ordinary rules on the ordinary
    config they would have if run by hand (``snakemake --configfile .../label_noise.yaml``), so
    their outputs, rerun triggers and resumption are exactly those of the main grid's."""
    import yaml

    from core.atomic import atomic_write_text
    from core.jobs.metrics import write_json
    from core.plan import Pipeline
    from core.report.ablation import ablation_markdown, ablation_rows, noise_free, rm_files

    cfg = job.params["config"]
    ablated = Pipeline(noise_free(cfg))
    atomic_write_text(job.out("config"), yaml.safe_dump(ablated.cfg, sort_keys=False))
    targets = sorted({f for b in ablated.dr_benchmarks() for fs in rm_files(ablated, b).values() for f in fs})
    snakefile = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(job.script))), "Snakefile")
    cmd = [sys.executable, "-m", "snakemake", "-s", snakefile, "-d", os.getcwd(), "--cores", str(job.threads),
           "--nolock", "--rerun-incomplete", *targets, "--configfile", job.out("config")]  # fmt: skip
    subprocess.run(cmd, check=True)
    with tracked_run(job) as run:
        rows = ablation_rows(Path.cwd(), Pipeline(cfg)) + ablation_rows(Path.cwd(), ablated)
        write_json(job.out("json"), rows)
        atomic_write_text(job.out("md"), ablation_markdown(rows))
        for path in (job.out("md"), job.out("json")):
            run.log_artifact(path)


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
        for key in ("claims", "ablation", "tables", "csvs", "figures", "theory"):
            for path in job.inputs(key):
                run.log_artifact(path, os.path.dirname(os.path.relpath(path, os.path.dirname(job.out("md")))))
        run.log_artifact(job.out("md"))
        run.log_artifact(job.out("html"))
