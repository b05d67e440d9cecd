"""Tables, figures and the report assembled from the workflow's metrics files (docs/design.md §5).

* :mod:`core.report.tables` — one table = rows x columns of numbers read from metrics JSONs
  (never typed in), averaged over seeds with a 95% interval, carrying MLflow run ids.
* :mod:`core.report.figures` — the distillation paper's figures from the same files.
* :mod:`core.report.report` — one readable document (``results/report.md`` + ``.html``).
"""
