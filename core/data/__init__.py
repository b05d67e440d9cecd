"""Preference data: the normalised schema, one loader for every format, and the papers' stages.

The names below are imported from their modules on first use (core.lazy), so a process that only
passes a job on (core.jobs.warm) does not import ``datasets``; ``core.data.synthetic`` (the
embedded default's generator) is imported on demand too.
"""

from __future__ import annotations

from core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    "core.data",
    {
        "bigbench": "fetch_bigbench_tasks",
        "io": "read_pairs write_dropped_rows write_pairs",
        "loaders": "load_preferences",
        "schema": "NORMALISED_COLUMNS OPTIONAL_COLUMNS REQUIRED_COLUMNS BadRow LoadError LoadReport RowError "
        "check_row column_kinds preference_features rows_to_dataset",
        "stages": "count_tokens ensemble_subsets filter_sources length_bias_subsample length_classes "
        "longer_preferred_fraction oracle_relabel split_by_prompt split_dataset subsample",
    },
)
