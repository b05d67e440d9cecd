"""Rule `claims`: every claim of both papers with its measured effect, interval and verdict
(core.jobs.report.claims)."""

from core.jobs.launch import entrypoint
from core.jobs.report import claims

if __name__ == "__main__":
    entrypoint(claims, globals())
