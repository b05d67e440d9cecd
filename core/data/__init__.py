"""Preference data: the normalised schema, one loader for every format, and the papers' stages.

``core.data.synthetic`` (the embedded default's generator) is imported on demand, not here.
"""

from core.data.bigbench import fetch_bigbench_tasks
from core.data.io import read_pairs, write_dropped_rows, write_pairs
from core.data.loaders import load_preferences
from core.data.schema import (
    NORMALISED_COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    BadRow,
    LoadError,
    LoadReport,
    RowError,
    check_row,
    column_kinds,
    preference_features,
    rows_to_dataset,
)
from core.data.stages import (
    count_tokens,
    ensemble_subsets,
    filter_sources,
    length_bias_subsample,
    length_classes,
    longer_preferred_fraction,
    oracle_relabel,
    split_dataset,
    subsample,
)

__all__ = [
    "NORMALISED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "BadRow",
    "LoadError",
    "LoadReport",
    "RowError",
    "check_row",
    "column_kinds",
    "count_tokens",
    "ensemble_subsets",
    "fetch_bigbench_tasks",
    "filter_sources",
    "length_bias_subsample",
    "length_classes",
    "load_preferences",
    "longer_preferred_fraction",
    "oracle_relabel",
    "preference_features",
    "read_pairs",
    "rows_to_dataset",
    "split_dataset",
    "subsample",
    "write_dropped_rows",
    "write_pairs",
]
