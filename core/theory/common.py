"""Shared helpers of the theory experiments (docs/design.md §1.4): configs, figures, tables, fits.

Every experiment is a pair ``run_<name>(config, seed) -> dict`` / ``plot_<name>(result, path)``.
``run_*`` returns ``{"name", "config", "seed", "table", "summary", ...}`` where ``table`` is a
tidy ``pandas.DataFrame`` (one observation per row) and ``summary`` a flat dict of JSON-able
scalars (the headline numbers: fitted slopes, gaps, ratios).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.atomic import atomic_savefig as _atomic_savefig
from core.atomic import atomic_write_json, atomic_write_text

__all__ = [
    "atomic_savefig",
    "check_positive",
    "json_clean",
    "save_result",
    "slope_or_nan",
    "fit_loglog_slope",
    "make_rng",
    "new_figure",
    "resolve_config",
    "write_table",
]


def resolve_config(name: str, defaults: Mapping[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``config`` over ``defaults``; unknown keys or values of the wrong kind raise ``ValueError``.

    Numbers may be given as int or float interchangeably; ``None`` is accepted where the default
    is ``None``.  The result is a deep copy (plain JSON-able values only).
    """
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ValueError(f"theory experiment {name!r}: config must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(
            f"theory experiment {name!r}: unknown config key(s) {unknown}; expected a subset of {sorted(defaults)}"
        )
    out = copy.deepcopy(dict(defaults))
    for key, value in config.items():
        default = defaults[key]
        if default is not None and value is not None and not _same_kind(default, value):
            raise ValueError(
                f"theory experiment {name!r}: config key {key!r} expects a value like {default!r}, got {value!r}"
            )
        out[key] = copy.deepcopy(value)
    return out


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, Sequence):
        return isinstance(value, Sequence) and not isinstance(value, str)
    if isinstance(default, Mapping):
        return isinstance(value, Mapping)
    return True


def make_rng(seed: int) -> np.random.Generator:
    """The experiment's random source: ``numpy.random.default_rng(seed)`` (same seed, same numbers)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def fit_loglog_slope(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit ``log y = a + s log x``; returns ``(s, a)``.  Needs >= 2 positive points."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {xs.shape} and {ys.shape}")
    keep = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    if keep.sum() < 2:
        raise ValueError(f"need at least 2 positive finite points for a log-log fit, got {int(keep.sum())}")
    s, a = np.polyfit(np.log(xs[keep]), np.log(ys[keep]), 1)
    return float(s), float(a)


def slope_or_nan(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """:func:`fit_loglog_slope`, or ``(nan, nan)`` when fewer than two points are positive (tiny configs)."""
    try:
        return fit_loglog_slope(x, y)
    except ValueError:
        return float("nan"), float("nan")


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4):
    """A matplotlib figure on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes


def atomic_savefig(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Lay out ``fig``, write it as PNG to ``path`` atomically (:mod:`core.atomic`) and close it."""
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        _atomic_savefig(fig, path, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)


def write_table(
    table: pd.DataFrame, csv_path: str | os.PathLike[str], md_path: str | os.PathLike[str] | None = None
) -> None:
    """Write a result table as CSV (and optionally Markdown), each atomically."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    atomic_write_text(csv_path, table.to_csv(index=False))
    if md_path is not None:
        atomic_write_text(md_path, table.to_markdown(index=False, floatfmt=".6g") + "\n")


def check_positive(name: str, key: str, value: float, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming the experiment and key unless ``value`` is positive (or zero)."""
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"theory experiment {name!r}: config key {key!r} must be {bound}, got {value!r}")


def save_result(
    result: Mapping[str, Any],
    table_csv: str | os.PathLike[str],
    table_md: str | os.PathLike[str] | None = None,
    summary_json: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``result["table"]`` (CSV, optional Markdown) and ``{name, seed, config, summary}`` as JSON, atomically."""
    write_table(result["table"], table_csv, table_md)
    if summary_json is not None:
        payload = json_clean({key: result[key] for key in ("name", "seed", "config", "summary")})
        atomic_write_json(summary_json, payload, indent=2, sort_keys=True, allow_nan=False)


def json_clean(value: Any) -> Any:
    """Plain JSON values: numpy scalars -> Python, non-finite floats -> ``None`` (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    return value
