"""The experiment grids a config expands into: seeds, the reward-model grid per variant and
divergence, PPO and DPO grids, the distillation grid, benchmarks. Values are the vocabulary's
words (core.vocab) and plain floats; paths are built from them by core.plan.paths."""

from __future__ import annotations

from typing import Any

from core.plan.paths import fmt
from core.vocab import BENCHMARKS, NO_GAMMA, PESSIMISTIC_LOSS_TYPES

#: the benchmark name of a variant's validation split (selection only; no table shows it)
VALIDATION = "val"
#: one grid point of a DR reward model: (variant, divergence, rho)
RMKey = tuple[str, str, float]


class Grids:
    """The grids of one validated config."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg

    def seeds(self) -> list[int]:
        return list(self.cfg["seeds"])

    # ------------------------------------------------------------------- DR paper
    @staticmethod
    def rm_key(variant: str, div: str, rho: float) -> RMKey:
        """BTL is one model per variant: rho = 0 (or divergence none) always maps to none/rho 0."""
        if rho == 0 or div == "none":
            return (variant, "none", 0.0)
        return (variant, div, float(rho))

    def rm_grid(self, variant: str, div: str) -> list[RMKey]:
        """Rows of a reward-model table: BTL then DR over the configured rho grid (DR paper Alg. 1)."""
        grid = self.cfg["dr"]["reward"]["grids"].get(variant, {}).get(div, [])
        return [self.rm_key(variant, div, 0.0)] + [self.rm_key(variant, div, r) for r in grid if r > 0]

    def ppo_grid(self, versions: list[str] | None = None) -> list[tuple[str, str, float]]:
        """(version, div, rho): standard PPO (version none) with the BTL RM, then vA and vB over
        the rho grid (DR paper §5.2); ``versions`` keeps only those robust versions."""
        p = self.cfg["dr"]["ppo"]
        rows = [("none", "none", 0.0)]
        for version in p["versions"]:
            if versions is None or version in versions:
                rows += [(version, p["divergence"], float(r)) for r in p["rho"] if r > 0]
        return rows

    def dpo_grid(self) -> list[tuple[str, float]]:
        """(div, rho): DPO, then DR-DPO over the rho grid (DR paper Alg. 3)."""
        p = self.cfg["dr"]["dpo"]
        return [("none", 0.0)] + [(p["divergence"], float(r)) for r in p["rho"] if r > 0]

    def dr_benchmarks(self) -> list[str]:
        """Benchmarks of the DR tables in this config ('id' = the variant's test split)."""
        return ["id"] + [b for b in BENCHMARKS[1:] if b in self.cfg["eval"]["benchmarks"]]

    def eval_benchmarks(self) -> list[str]:
        """What each DR-paper model is scored on: the tables' benchmarks and the variant's
        validation split (model selection over rho for the claims; never a test split)."""
        return [*self.dr_benchmarks(), VALIDATION]

    def reference_rules(self) -> list[str]:
        """Reference rows of every benchmark table (core.eval.reference); the oracle's ceiling
        where the config's oracle is the world's exact reward."""
        exact = self.cfg["distill"]["oracle"]["kind"] == "exact"
        return ["longer", "random"] + (["oracle"] if exact else [])

    def pairwise_benchmarks(self) -> list[str]:
        """The DR benchmarks scored pair by pair: all but RewardBench 2 (scored record by record, in a
        table of its own)."""
        return [b for b in self.dr_benchmarks() if b != "rewardbench2"]

    def dr_benchmarks_ood(self) -> list[str]:
        """ID plus the OOD benchmarks of Tables 3, 6, 8 (HHH, MT-Bench) that this config has."""
        return [b for b in self.pairwise_benchmarks() if b != "rewardbench"]

    def benchmark_spec(self, bench: str) -> dict[str, Any]:
        if bench == "id":
            return {"kind": "pairs", "label": self.cfg["report"]["id_label"]}
        if bench == VALIDATION:
            return {"kind": "pairs", "label": "Validation (in-distribution)"}
        return self.cfg["eval"]["benchmarks"][bench]

    def bench_label(self, bench: str) -> str:
        return self.benchmark_spec(bench)["label"]

    # -------------------------------------------------------- distillation paper
    def distill_hparams(self, method: str) -> list[float]:
        """The swept hyper-parameter of a method: tau for IPO, beta for the DPO family (Fig. B.4)."""
        d = self.cfg["distill"]
        return [float(x) for x in (d["tau"] if method == "ipo" else d["beta"])]

    def gamma_modes(self, method: str) -> list[str]:
        """The gamma schedules a method is trained with (Figure B.5 compares e-DPO's two)."""
        if method not in PESSIMISTIC_LOSS_TYPES:
            return [NO_GAMMA]
        g = self.cfg["distill"]["gamma"]
        if method == "edpo" and g["compare_constant"]:
            return ["linear", "constant"]
        return [g["schedule"]]

    def distill_runs(self) -> list[tuple[str, float, float, str]]:
        """Every (method, bias, beta, gamma) policy of the distillation experiments."""
        d = self.cfg["distill"]
        return [
            (m, float(bias), beta, g)
            for m in d["methods"]
            for bias in d["biases"]
            for beta in self.distill_hparams(m)
            for g in self.gamma_modes(m)
        ]

    def ensemble_members(self) -> list[str]:
        return [f"ens{fmt(b)}" for b in self.cfg["distill"]["ensemble_b"]]

    def eval_settings(self) -> dict[str, Any]:
        """The evaluation settings every scoring job shares (a rerun trigger of those jobs)."""
        e = self.cfg["eval"]
        return {"batch_size": e["batch_size"], "max_length": e["max_length"], "ties": e["ties"],
                "degenerate_std": e["degenerate_std"]}  # fmt: skip
