"""Compare every table CSV of two results folders, ignoring the MLflow run-id columns.

Used to check that a refactor changes no number: run the default DAG before and after, then

    python benchmarks/compare_tables.py OLD/results/<config>/tables NEW/results/<config>/tables

prints each table that differs (shape, columns, or the first differing cells) and a summary line;
exits 1 when any table differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def compare(old: Path, new: Path) -> int:
    same = differ = 0
    for f in sorted(old.glob("*.csv")):
        g = new / f.name
        if not g.exists():
            print(f"{f.name}: missing in {new}")
            differ += 1
            continue
        a, b = (pd.read_csv(p, keep_default_na=False, dtype=str) for p in (f, g))
        a, b = (x.drop(columns=[c for c in x.columns if "run_ids" in c]) for x in (a, b))
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            print(f"{f.name}: shape/columns {a.shape} vs {b.shape}")
            differ += 1
            continue
        cells = list(zip(*(a != b).to_numpy().nonzero(), strict=True))
        if cells:
            shown = [(a.columns[j], a.iloc[i, j], b.iloc[i, j]) for i, j in cells[:3]]
            print(f"{f.name}: {len(cells)} cells differ, e.g. {shown}")
            differ += 1
        else:
            same += 1
    print(f"{same} identical, {differ} different, of {same + differ} tables")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
