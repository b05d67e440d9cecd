"""The workflow's Python: config validation (config), the path scheme (paths), the grids a
config expands into (grids), rule helpers (workflow.Pipeline), table/figure/report specs (specs),
the job adapter of the scripts (job) and the training / evaluation jobs (train_jobs, eval_jobs).

The ``.smk`` files hold rules only and call :class:`Pipeline`; see docs/design.md §4-§5."""

from core.pipeline.workflow import Pipeline

__all__ = ["Pipeline"]
