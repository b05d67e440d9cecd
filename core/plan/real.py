"""The plan of a real-text config (``experiment: real-text``; configs/small-real.yaml,
docs/small-real.md): its validation (clear errors naming the key), paths, seeds and grids of reward
models, log-linear policies and distillation policies; importable without torch. The jobs that
run it: core.jobs.real_text and core.jobs.real_distill.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.plan.paths import fmt
from core.trainers.loglinear import PESSIMISTIC, POLICY_METHODS

EXPERIMENT = "real-text"
BENCHMARKS = ("val", "id", "shifted", "heldout", "hhh")
DIVERGENCES = ("tv", "chi2")
_TOP_KEYS = {
    "experiment", "name", "seeds", "tracking", "data_root", "data", "encoder", "reward", "policy", "distill", "eval",
}  # fmt: skip


def _need(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise ValueError(f"config: missing key '{where}{key}'")
    return mapping[key]


@dataclass(frozen=True)
class RealPlan:
    """Config, paths and grid of a real-text config; importable without torch."""

    config: Mapping[str, Any]

    def __post_init__(self) -> None:
        cfg = self.config
        unknown = sorted(set(cfg) - _TOP_KEYS)
        if unknown:
            raise ValueError(
                f"config: unknown key(s) {unknown} for experiment {EXPERIMENT!r}; expected {sorted(_TOP_KEYS)}"
            )
        for key in ("name", "seeds", "data_root", "data", "encoder", "reward", "eval"):
            _need(cfg, key, "")
        seeds = cfg["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise ValueError(f"config: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
        data = cfg["data"]
        for key in ("pool", "hhh", "split", "under_represented", "variants"):
            _need(data, key, "data.")
        for key in ("path", "annotator", "reference", "n_generators", "generator_seed"):
            _need(data["pool"], key, "data.pool.")
        split = data["split"]
        if not (0 < float(_need(split, "val", "data.split.")) and 0 < float(_need(split, "test", "data.split."))):
            raise ValueError("config: data.split.val and data.split.test must be > 0")
        for variant, spec in data["variants"].items():
            if not isinstance(_need(spec, "exclude", f"data.variants.{variant}."), list):
                raise ValueError(f"config: data.variants.{variant}.exclude must be a list of sources")
        for variant, grid in _need(cfg["reward"], "grids", "reward.").items():
            if variant not in data["variants"]:
                raise ValueError(f"config: reward.grids.{variant}: no such variant in data.variants")
            for div, rhos in grid.items():
                if div not in DIVERGENCES:
                    raise ValueError(f"config: reward.grids.{variant}.{div}: divergence must be one of {DIVERGENCES}")
                if not all(isinstance(r, int | float) and 0 < r and math.isfinite(r) for r in rhos):
                    raise ValueError(f"config: reward.grids.{variant}.{div}: rho values must be finite and > 0")
        if cfg["reward"].get("rm_variant", "unfiltered") not in data["variants"]:
            raise ValueError("config: reward.rm_variant must name a variant of data.variants")
        if "policy" in cfg:
            pol = cfg["policy"]
            for key in ("methods", "beta", "eps", "train"):
                _need(pol, key, "policy.")
            bad = sorted(set(pol["methods"]) - set(POLICY_METHODS))
            if bad or "dpo" not in pol["methods"]:
                raise ValueError(f"config: policy.methods must include dpo and be among {POLICY_METHODS}, got {bad}")
            for div in pol.get("dr", {}):
                if div not in DIVERGENCES:
                    raise ValueError(f"config: policy.dr.{div}: divergence must be one of {DIVERGENCES}")
        if "distill" in cfg:
            check_distill(cfg)

    # ------------------------------------------------------------------ places
    @property
    def root(self) -> str:
        return f"results/{self.config['name']}"

    def data_path(self, rel: str) -> str:
        """A data file under the data root (``data_root``, or ``ROBUST_RLHF_DATA`` when set)."""
        base = os.environ.get("ROBUST_RLHF_DATA") or self.config["data_root"]
        return str(Path(base) / rel)

    def pairs(self, name: str) -> str:
        return f"{self.root}/data/{name}.parquet"

    def states(self) -> dict[str, str]:
        return {"texts": f"{self.root}/states/texts.parquet", "states": f"{self.root}/states/states.npz"}

    def point(self, variant: str, div: str, rho: float) -> str:
        return f"rm/{variant}/{div}/rho{fmt(rho)}"

    def model(self, variant: str, div: str, rho: float, seed: int) -> str:
        return f"{self.root}/models/{self.point(variant, div, rho)}/seed{seed}"

    def metrics(self, variant: str, div: str, rho: float, seed: int) -> str:
        return f"{self.root}/metrics/{self.point(variant, div, rho)}/seed{seed}.json"

    def log(self, rel: str) -> str:
        return f"{self.root}/logs/{rel}.log"

    def policy_metrics(self, seed: int) -> str:
        return f"{self.root}/metrics/policy/seed{seed}.json"

    def distill_metrics(self, seed: int) -> str:
        return f"{self.root}/metrics/distill/seed{seed}.json"

    def figure2(self, ext: str) -> str:
        """Figure 2 (the distillation policies per length bias) as a table."""
        return f"{self.root}/tables/figure2.{ext}"

    def table(self, ext: str, number: int = 8) -> str:
        return f"{self.root}/tables/table{number}.{ext}"

    def claims(self, ext: str) -> str:
        return f"{self.root}/claims.{ext}"

    # ------------------------------------------------------------------ grid
    def seeds(self) -> list[int]:
        return list(self.config["seeds"])

    def grid(self) -> list[tuple[str, str, float]]:
        """Every (variant, divergence, rho): BTL (``none``, 0) and the DR points of each variant."""
        out = []
        for variant, grid in self.config["reward"]["grids"].items():
            out.append((variant, "none", 0.0))
            out.extend((variant, div, float(rho)) for div, rhos in grid.items() for rho in rhos)
        return out

    def all_metrics(self) -> list[str]:
        return [self.metrics(v, d, r, s) for v, d, r in self.grid() for s in self.seeds()]


# ---------------------------------------------------------------------- data of one seed
def choose_generators(names: Sequence[str], k: int, reference: str, seed: int) -> list[str]:
    """``k`` evaluated generators by a seeded permutation of the sorted names (the reference excluded)."""
    names = sorted(set(names) - {reference})
    if not 1 <= k <= len(names):
        raise ValueError(f"data.pool.n_generators must be in [1, {len(names)}], got {k}")
    order = np.random.default_rng(seed).permutation(len(names))
    return sorted(names[i] for i in order[:k])


def policy_grid(plan: RealPlan) -> list[tuple[str, str, float, float]]:
    """Every (method, divergence, rho, beta) of ``policy``: DPO, IPO, cDPO, rDPO and DR-DPO's grid."""
    pol = plan.config["policy"]
    out = [(m, "none", 0.0, float(b)) for m in pol["methods"] for b in pol["beta"]]
    out += [("dpo", d, float(r), float(b)) for d, rhos in pol.get("dr", {}).items() for r in rhos for b in pol["beta"]]
    return out


def policy_key(method: str, div: str, rho: float, beta: float) -> str:
    return f"{method}|{div}|{fmt(rho)}|{fmt(beta)}"


DISTILL_METHODS = ("dpo", "ipo", "ddpo", "pdpo", "edpo")
_DISTILL_KEYS = ("biases", "n_train", "margin", "ensemble_b", "ensemble_n", "methods", "beta", "gamma", "probe")


def check_distill(cfg: Mapping[str, Any]) -> None:
    """Validate the ``distill`` section of a real-text config (clear errors naming the key)."""
    dist = cfg["distill"]
    if "policy" not in cfg:
        raise ValueError("config: 'distill' needs the 'policy' section (its features, optimiser and eps)")
    missing = [k for k in _DISTILL_KEYS if k not in dist]
    if missing:
        raise ValueError(f"config: missing key(s) {['distill.' + k for k in missing]}")
    for key in ("biases", "ensemble_b"):
        if not dist[key] or not all(isinstance(b, int | float) and 0 <= b <= 1 for b in dist[key]):
            raise ValueError(f"config: distill.{key} must be a non-empty list of numbers in [0, 1]")
    for key in ("n_train", "ensemble_n"):
        if not isinstance(dist[key], int) or dist[key] < 2:
            raise ValueError(f"config: distill.{key} must be an integer >= 2, got {dist[key]!r}")
    bad = sorted(set(dist["methods"]) - set(DISTILL_METHODS))
    if bad or "dpo" not in dist["methods"]:
        raise ValueError(f"config: distill.methods must include dpo and be among {DISTILL_METHODS}, got {bad}")
    for key in ("beta", "gamma"):
        if not dist[key] or not all(isinstance(v, int | float) and v > 0 for v in dist[key]):
            raise ValueError(f"config: distill.{key} must be a non-empty list of numbers > 0")
    probe = dist["probe"]
    if probe.get("bias") not in dist["biases"] or probe.get("beta") not in dist["beta"]:
        raise ValueError("config: distill.probe.bias and distill.probe.beta must be in distill.biases and distill.beta")


def distill_grid(cfg: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """Every (method, beta, gamma) of ``distill``; gamma is 0 for the methods without the KL term."""
    dist = cfg["distill"]
    return [
        (m, float(b), float(g))
        for m in dist["methods"]
        for b in dist["beta"]
        for g in (dist["gamma"] if m in PESSIMISTIC else [0.0])
    ]


def distill_key(method: str, beta: float, gamma: float) -> str:
    return f"{method}|{fmt(beta)}|{fmt(gamma)}"
