"""Rule `filter_sources`: the DR paper's training-set variants by source (Table 8;
core.jobs.data.filter_sources)."""

from core.jobs.data import filter_sources
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(filter_sources, globals())
