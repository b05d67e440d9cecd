"""Rule `figure`: one figure as PNG from the metrics files of its spec (core.jobs.report.figure)."""

from core.jobs.launch import entrypoint
from core.jobs.report import figure

if __name__ == "__main__":
    entrypoint(figure, globals())
