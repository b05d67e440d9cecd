"""Rule `table`: one paper table as CSV + Markdown from the metrics files its spec names
(core.jobs.report.table)."""

from core.jobs.launch import entrypoint
from core.jobs.report import table

if __name__ == "__main__":
    entrypoint(table, globals())
