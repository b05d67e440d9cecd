"""How a workflow script starts its job: a script ends with ``entrypoint(main, globals())`` for a
``main(job: Job) -> None`` from ``core.jobs``. Run by Snakemake's ``script:`` directive the job
comes from the ``snakemake`` object (``--job JOB.json`` when ``accelerate launch`` started the
process); a one-process job runs in a child forked from the warm-start server when one answers
(core.jobs.warm), else in this process (core.jobs.run.run_job). A real-text script (its jobs
open their own MLflow runs per seed) ends with ``run_script(main, snakemake)`` instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.jobs.job import Job
from core.jobs.run import run_job
from core.jobs.warm import run_warm


def entrypoint(main: Callable[[Job], None], scope: dict[str, Any]) -> None:
    """Build the job (from Snakemake or ``--job``) and run ``main``: in a child of the warm-start
    server when one answers (core.jobs.warm, one-process jobs), else in this process."""
    smk = scope.get("snakemake")
    script = os.path.realpath(scope.get("__file__", sys.argv[0]))
    if smk is not None:
        job = Job.from_snakemake(smk, script)
    else:
        if len(sys.argv) != 3 or sys.argv[1] != "--job":
            raise SystemExit(f"usage: {sys.argv[0]} --job JOB.json (or run by Snakemake's script directive)")
        job = Job.from_json(sys.argv[2])
    if smk is not None and job.nproc == 1:
        code = run_warm(job, main)  # None: no warm-start server answers, run here
        if code is not None:
            raise SystemExit(code)
    run_job(main, job)


def run_script(main: Any, sm: Any) -> None:
    """Run ``main(snakemake)`` of a real-text workflow script (core.jobs.real_text; its jobs open their
    own MLflow runs per seed): stdout and stderr to the rule's log (appended), HF offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log = str(sm.log[0]) if len(sm.log) else None
    if log is None:
        main(sm)
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            main(sm)
        except BaseException:
            traceback.print_exc(file=fh)
            fh.flush()
            sys.stderr.write(f"failed: see {log}\n")
            raise
