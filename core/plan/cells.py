"""The cells a config's metrics files make (core.report.spec_types): per-seed files of a model,
and the selections over rho (DR claims) and beta / tau (distillation paper §6.1) chosen on the
validation split, never on a test split. The base of the table, claim and figure plans."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.plan.paths import fmt
from core.report.spec_types import Candidate, SeedFiles, Selection

#: Figure B.1's methods and the gamma schedule each is shown with
B1_SERIES = (("dpo", "none"), ("pdpo", "linear"), ("ddpo", "none"), ("dpdpo", "linear"))
#: the oracle advantage over the SFT policy: what a distillation policy is selected and judged on
ADVANTAGE_KEY = "metrics/advantage"


class CellPlan:
    """Files and selections of one config (a :class:`core.plan.workflow.Pipeline`)."""

    def __init__(self, pipeline: Any) -> None:
        self.p, self.cfg, self.paths = pipeline, pipeline.cfg, pipeline.paths
        self.note = self.cfg["report"]["note"]

    def seed_files(self, dir_of: Callable[[int], str], leaf: str) -> tuple[str, ...]:
        """The metrics file ``leaf`` of the model ``dir_of(seed)``, one per seed."""
        return tuple(self.paths.metrics(dir_of(s), leaf) for s in self.p.seeds())

    def seed_cell(self, dir_of: Callable[[int], str], leaf: str) -> SeedFiles:
        return SeedFiles(self.seed_files(dir_of, leaf))

    def score_prefix(self, kind: str) -> str:
        """Where a metrics file keeps its numbers: reward models at the top, policies per mode."""
        if kind == "rm":
            return "metrics"
        mode = self.cfg["report"]["ppo_mode"] if kind == "ppo" else self.cfg["report"]["dpo_mode"]
        return f"metrics/{mode}"

    @staticmethod
    def bench_key(prefix: str, bench: str) -> str:
        """A benchmark's headline number: accuracy in distribution, the overall score otherwise."""
        return f"{prefix}/accuracy" if bench == "id" else f"{prefix}/scores/overall"

    def rho_selection(self, dir_of: Callable[[float, int], str], grid: list, bench: str, prefix: str) -> Selection:
        """Rows of ``grid`` (rho values) as selection candidates: the rho with the best seed-mean
        validation accuracy is the treated row (never chosen on a test split)."""
        cands = tuple(Candidate(f"ρ={fmt(r)}", self.seed_files(lambda s, r=r: dir_of(r, s), "val"),
                                self.seed_files(lambda s, r=r: dir_of(r, s), bench)) for r in grid)  # fmt: skip
        return Selection(cands, f"{prefix}/accuracy")

    # ------------------------------------------------------------- distillation
    def distill_seed_files(self, method: str, bias: float, beta: float, gamma: str, leaf: str) -> tuple[str, ...]:
        return self.seed_files(lambda s: self.paths.distill(method, bias, beta, gamma, s), leaf)

    def candidates(self, method: str, bias: float, modes: list, leaf: str) -> tuple[Candidate, ...]:
        """Model selection over beta (tau for IPO) on the validation split (distillation paper §6.1)."""
        hp = "τ" if method == "ipo" else "β"
        return tuple(
            Candidate(f"{hp}={fmt(beta)}", self.distill_seed_files(method, bias, beta, g, "oracle_val"),
                      self.distill_seed_files(method, bias, beta, g, leaf))
            for beta in self.p.distill_hparams(method)
            for g in modes
        )  # fmt: skip

    def selected(self, method: str, bias: float, leaf: str, gamma: str | None = None) -> Selection:
        """``method`` at ``bias`` with its beta (tau) chosen on the validation oracle advantage."""
        modes = [gamma] if gamma else self.p.gamma_modes(method)[:1]
        return Selection(self.candidates(method, bias, modes, leaf), ADVANTAGE_KEY)

    def mid_bias(self) -> float:
        """The length bias nearest 0.5 (the least biased labels of the grid)."""
        return min((float(b) for b in self.cfg["distill"]["biases"]), key=lambda b: abs(b - 0.5))

    def b1_series(self) -> list[tuple[str, str]]:
        """Figure B.1's (method, gamma) pairs present in this config."""
        out = []
        for m, g in B1_SERIES:
            if m in self.cfg["distill"]["methods"]:
                out.append((m, g if g in self.p.gamma_modes(m) else self.p.gamma_modes(m)[0]))
        return out
