"""Preference data: the normalised schema, one loader for every format, and the papers' stages.

The names below are imported from their modules on first use (PEP 562), so a process that only
passes a job on (core.pipeline.warm) does not import ``datasets``; ``core.data.synthetic`` (the
embedded default's generator) is imported on demand too.
"""

from __future__ import annotations

import importlib
from typing import Any

#: the module (under core.data) that defines each public name
_DEFINED_IN = {
    "bigbench": "fetch_bigbench_tasks",
    "io": "read_pairs write_dropped_rows write_pairs",
    "loaders": "load_preferences",
    "schema": "NORMALISED_COLUMNS OPTIONAL_COLUMNS REQUIRED_COLUMNS BadRow LoadError LoadReport RowError check_row "
    "column_kinds preference_features rows_to_dataset",
    "stages": "count_tokens ensemble_subsets filter_sources length_bias_subsample length_classes "
    "longer_preferred_fraction oracle_relabel split_by_prompt split_dataset subsample",
}
_MODULES = {name: f"core.data.{module}" for module, names in _DEFINED_IN.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'core.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "split_by_prompt",
    "split_dataset",
    "subsample",
    "write_dropped_rows",
    "write_pairs",
]
