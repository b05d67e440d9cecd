"""Rule `report`: every table and figure in one document and one MLflow run
(core.jobs.report.report)."""

from core.jobs.launch import entrypoint
from core.jobs.report import report

if __name__ == "__main__":
    entrypoint(report, globals())
