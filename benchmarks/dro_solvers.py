"""Exact worst-case-weight solvers vs the cvxpy reference (issue: foundation benchmark).

Prints, for n in {16, 128, 1024} and each divergence, the median wall time of
``core.dro.worst_case_weights`` and of ``worst_case_weights_cvxpy`` (cvxpy's default solver),
measured in this one run, their ratio and the objective gap relative to the loss spread.
Goals: tv >= 300x and chi2 >= 100x faster than cvxpy at n = 128 and 1024, gap <= 1e-6.

    python benchmarks/dro_solvers.py [--seed 0] [--exact-reps 300] [--cvxpy-reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from core.dro import worst_case_weights, worst_case_weights_cvxpy

RADII = {"tv": 0.2, "chi2": 0.5, "kl": 0.2, "cvar": 0.3}
GOALS = {"tv": 300.0, "chi2": 100.0}


def _median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact-reps", type=int, default=300)
    parser.add_argument("--cvxpy-reps", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'n':>5} {'div':>5} {'exact_us':>10} {'cvxpy_ms':>10} {'ratio':>9} {'rel_gap':>10}  goal")
    failures = []
    for n in (16, 128, 1024):
        losses = rng.gamma(2.0, 1.0, size=n)
        for div, rho in RADII.items():
            exact = _median_seconds(lambda d=div, r=rho, x=losses: worst_case_weights(x, d, r), args.exact_reps)
            worst_case_weights_cvxpy(losses, div, rho)  # warm cvxpy's canonicalisation caches
            ref_time = _median_seconds(
                lambda d=div, r=rho, x=losses: worst_case_weights_cvxpy(x, d, r), args.cvxpy_reps
            )
            q = worst_case_weights(losses, div, rho)
            ref = worst_case_weights_cvxpy(losses, div, rho)
            gap = (float(ref @ losses) - float(q @ losses)) / float(np.ptp(losses))
            ratio = ref_time / exact
            goal = GOALS.get(div)
            verdict = ""
            if goal is not None and n >= 128:
                ok = ratio >= goal and abs(gap) <= 1e-6
                verdict = f">= {goal:.0f}x: {'met' if ok else 'MISSED'}"
                if not ok:
                    failures.append((n, div))
            print(f"{n:>5} {div:>5} {exact * 1e6:>10.1f} {ref_time * 1e3:>10.2f} {ratio:>9.0f} {gap:>10.2e}  {verdict}")
    print("all goals met" if not failures else f"goals missed for {failures}")


if __name__ == "__main__":
    main()
