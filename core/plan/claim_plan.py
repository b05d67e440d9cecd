"""Each claim and gate of core.report.paper_claims turned into this config's metrics files: one
method per kind of comparison, no code per claim (a claim is declared once, in paper_claims)."""

from __future__ import annotations

from collections.abc import Callable

from core.plan.cells import ADVANTAGE_KEY, CellPlan
from core.plan.paths import fmt
from core.report.paper_claims import (
    CLAIMS,
    GATES,
    BeatsReferences,
    Claim,
    Converged,
    DistilledVsDirect,
    Gate,
    LargestVsSmallestRho,
    PlainAdvantage,
    ProbeVsDPO,
    RobustVsPlain,
    SelectedAdvantage,
    TheorySlope,
    TheoryValue,
)
from core.report.spec_types import (
    ClaimCell,
    ExactCell,
    FlattensBefore,
    GateSpec,
    MeanAbove,
    PairedCell,
    SeedFiles,
    Series,
    SlopeCell,
)
from core.vocab import METHOD_LABELS

ModelDir = Callable[[int], str]


class ClaimPlan(CellPlan):
    """The cells of every claim and the specs of every gate of one config."""

    def _dr_family(self, kind: str) -> tuple[list[float], ModelDir, Callable[[float, int], str]]:
        """A DR family's rho grid, its non-robust model and its DR model at rho (``rm``: TV)."""
        p = self.paths
        if kind == "rm":
            v = self.cfg["report"]["rm_variant"]
            grid = [r for _, d, r in self.p.rm_grid(v, "tv") if d == "tv"]
            return grid, (lambda s: p.rm(v, "none", 0.0, s)), (lambda r, s: p.rm(v, "tv", r, s))
        if kind == "dpo":
            v, div = self.cfg["dr"]["dpo"]["variant"], self.cfg["dr"]["dpo"]["divergence"]
            grid = [r for d, r in self.p.dpo_grid() if d != "none"]
            return grid, (lambda s: p.dpo(v, "none", 0.0, s)), (lambda r, s: p.dpo(v, div, r, s))
        v, div = self.cfg["dr"]["ppo"]["variant"], self.cfg["dr"]["ppo"]["divergence"]
        grid = [r for ver, _, r in self.p.ppo_grid(["vA"]) if ver == "vA"]
        return grid, (lambda s: p.ppo(v, "none", "none", 0.0, s)), (lambda r, s: p.ppo(v, "vA", div, r, s))

    def robust_vs_plain(self, cid: str, bench: str, kind: str) -> PairedCell | None:
        """A DR-paper paired claim: BTL / PPO / DPO against its DR row with rho chosen on validation
        (``oracle_id`` / ``oracle_ood``: PPO judged by the oracle reward of its samples)."""
        oracle = bench.startswith("oracle_")
        if not oracle and bench not in self.p.dr_benchmarks():
            return None
        grid, base, dir_of = self._dr_family(kind)
        if not grid:
            return None
        p, prefix = self.paths, self.score_prefix(kind)
        key = "metrics/overall/mean" if oracle else self.bench_key(prefix, bench)
        treatment = self.rho_selection(dir_of, grid, bench, prefix)
        models = [base(s) for s in self.p.seeds()] + [dir_of(r, s) for r in grid for s in self.p.seeds()]
        flag_key, flag_bench = f"{prefix}/spread/degenerate", "id" if oracle else bench
        return PairedCell(cid, bench, key, self.seed_cell(base, bench), treatment, scale=1 if oracle else 100,
                          degenerate=tuple((p.metrics(m, flag_bench), flag_key) for m in models))  # fmt: skip

    def largest_vs_smallest_rho(self, claim: Claim, div: str) -> PairedCell | None:
        """The ``div`` DR RM at the largest rho against the smallest (core.report.paper_claims.
        LargestVsSmallestRho); against BTL (rho 0) when the grid has one rho."""
        if claim.benchmark not in self.p.dr_benchmarks():
            return None
        reward = self.cfg["dr"]["reward"]
        variants = [v for v, d in self.cfg["report"]["subset_tables"].values() if d == div] or [
            v for v, g in reward["grids"].items() if div in g]  # fmt: skip
        grid = sorted(r for r in reward["grids"].get(variants[0], {}).get(div, []) if r > 0) if variants else []
        if not grid:
            return None
        grid = grid if len(grid) > 1 else [0.0, *grid]
        v, p, bench = variants[0], self.paths, claim.benchmark
        lo_key, hi_key = self.p.rm_key(v, div, grid[0]), self.p.rm_key(v, div, grid[-1])
        lo, hi = (lambda s: p.rm(*lo_key, s)), (lambda s: p.rm(*hi_key, s))
        models = [lo(s) for s in self.p.seeds()] + [hi(s) for s in self.p.seeds()]
        return PairedCell(claim.id, bench, self.bench_key("metrics", bench), self.seed_cell(lo, bench),
                          self.seed_cell(hi, bench), scale=100,
                          baseline_label=f"{'BTL RM' if grid[0] == 0 else 'DR RM'} ({div}, ρ={fmt(grid[0])}, {v})",
                          treatment_label=f"DR RM ({div}, ρ={fmt(grid[-1])}, {v})",
                          degenerate=tuple((p.metrics(m, bench), "metrics/spread/degenerate")
                                           for m in models))  # fmt: skip

    def theory(self, claim: Claim, measure: TheorySlope | TheoryValue) -> ClaimCell | None:
        """A theory experiment's table (a slope's equivalence) or summary number (an exact value)."""
        if measure.experiment not in self.cfg["theory"]["experiments"]:
            return None
        if isinstance(measure, TheorySlope):
            table = self.paths.table(f"theory_{measure.experiment}", "csv")
            return SlopeCell(claim.id, table, measure.claimed, measure.margin)
        file = self.paths.metrics("theory", measure.experiment)
        return ExactCell(claim.id, file, measure.key, measure.reference, measure.reference_key)

    def distilled_vs_direct(self, claim: Claim, m: DistilledVsDirect) -> list[PairedCell]:
        d, out = self.cfg["distill"], []
        methods = d["methods"]
        for bias in [float(b) for b in d["biases"] if abs(float(b) - 0.5) >= m.min_distance]:
            for a in [x for x in m.treated if x in methods]:
                for b in [x for x in m.baselines if x in methods]:
                    out.append(PairedCell(f"{claim.id}:{a}-vs-{b}@bias{fmt(bias)}",
                                          f"oracle (length bias {fmt(bias)})", ADVANTAGE_KEY,
                                          self.selected(b, bias, "oracle_test"),
                                          self.selected(a, bias, "oracle_test"), baseline_label=METHOD_LABELS[b],
                                          treatment_label=METHOD_LABELS[a]))  # fmt: skip
        return out

    def probe_vs_dpo(self, claim: Claim, m: ProbeVsDPO) -> list[PairedCell]:
        b1, series = self.cfg["report"]["figureB1"], dict(self.b1_series())
        if "dpo" not in series:
            return []
        base = SeedFiles(self.distill_seed_files("dpo", b1["bias"], b1["beta"], series["dpo"], "train"))
        bench = f"probes (bias {fmt(b1['bias'])}, beta {fmt(b1['beta'])})"
        return [PairedCell(f"{claim.id}:{x}-vs-dpo", bench, "metrics/probes/preferred_log_likelihood", base,
                           SeedFiles(self.distill_seed_files(x, b1["bias"], b1["beta"], series[x], "train")),
                           baseline_label="DPO", treatment_label=METHOD_LABELS[x])
                for x in m.treated if x in series]  # fmt: skip

    def claim_cells(self, claim: Claim) -> list[ClaimCell]:
        """The cells this config measures ``claim`` on: its comparison (``claim.measure``) turned
        into this config's metrics files; none when the config lacks what it compares."""
        m = claim.measure
        if isinstance(m, RobustVsPlain):
            cells = [self.robust_vs_plain(claim.id, claim.benchmark, m.family)]
        elif isinstance(m, LargestVsSmallestRho):
            cells = [self.largest_vs_smallest_rho(claim, m.divergence)]
        elif isinstance(m, TheorySlope | TheoryValue):
            cells = [self.theory(claim, m)]
        elif isinstance(m, DistilledVsDirect):
            cells = self.distilled_vs_direct(claim, m)
        elif isinstance(m, ProbeVsDPO):
            cells = self.probe_vs_dpo(claim, m)
        elif m is None:
            cells = []
        else:
            raise TypeError(f"claim {claim.id}: no plan for a {type(m).__name__} comparison")
        return [c for c in cells if c is not None]

    def claims(self) -> dict[str, list[ClaimCell]]:
        """Claim id (core.report.paper_claims.CLAIMS) -> the cells this config measures it on."""
        return {c.id: cells for c in CLAIMS if (cells := self.claim_cells(c))}

    # ------------------------------------------------------------------ gates
    def learning_families(self) -> dict[str, Series]:
        """The model families whose budget is chosen from the validation-loss curve (the gates'
        core.report.paper_claims.Converged): ``rm`` the BTL reward model, ``dpo`` DPO, and
        ``distill`` the distillation paper's DPO at the bias nearest 0.5. An epoch budget (no
        ``max_steps``) is the last logged step of the curve (budget None)."""
        p, seeds, dr = self.paths, self.p.seeds(), self.cfg["dr"]
        variant, dpo_variant = self.cfg["report"]["rm_variant"], dr["dpo"]["variant"]
        out = {
            "rm": Series("BTL RM", tuple(p.metrics(p.rm(variant, "none", 0.0, s), "train") for s in seeds),
                         dr["reward"]["train"].get("max_steps")),
            "dpo": Series("Std. DPO", tuple(p.metrics(p.dpo(dpo_variant, "none", 0.0, s), "train") for s in seeds),
                          dr["dpo"]["train"].get("max_steps")),
        }  # fmt: skip
        d = self.cfg["distill"]
        if "dpo" in d["methods"]:
            mid, beta = self.mid_bias(), self.p.distill_hparams("dpo")[0]
            out["distill"] = Series(f"DPO (distillation, bias {fmt(mid)}, β={fmt(beta)})",
                                    self.distill_seed_files("dpo", mid, beta, "none", "train"),
                                    d["policy"]["train"].get("max_steps"))  # fmt: skip
        return out

    def gate_spec(self, gate: Gate) -> GateSpec | None:
        """What ``gate`` reads in this config (its comparison, ``gate.measure``); None when the
        config lacks it."""
        p, m = self.paths, gate.measure
        if isinstance(m, BeatsReferences):
            variant = self.cfg["report"]["rm_variant"]
            return MeanAbove("metrics/accuracy", self.seed_cell(lambda s: p.rm(variant, "none", 0.0, s), "id"),
                             tuple(p.metrics(p.reference(variant, r), "id") for r in m.references))  # fmt: skip
        if isinstance(m, SelectedAdvantage):
            if m.method not in self.cfg["distill"]["methods"]:
                return None
            return MeanAbove(ADVANTAGE_KEY, self.selected(m.method, self.mid_bias(), "oracle_test"), threshold=0.0)
        if isinstance(m, PlainAdvantage):
            variant = self.cfg["dr"]["ppo"]["variant"]
            return MeanAbove("metrics/overall/advantage", self.seed_cell(
                lambda s: p.ppo(variant, "none", "none", 0.0, s), "oracle_id"), threshold=0.0)  # fmt: skip
        if isinstance(m, Converged):
            fam = self.learning_families().get(m.family)
            return None if fam is None else FlattensBefore(fam.files, fam.budget)
        raise TypeError(f"gate {gate.name}: no plan for a {type(m).__name__} comparison")

    def gates(self) -> dict[str, GateSpec]:
        """Sanity gates (core.report.paper_claims.GATES) of this config, by name."""
        return {g.name: spec for g in GATES.values() if (spec := self.gate_spec(g)) is not None}

    def claim_files(self) -> list[str]:
        """Every file the claims table reads (the claims rule's inputs)."""
        cells = [c for cs in self.claims().values() for c in cs]
        return sorted({f for spec in [*cells, *self.gates().values()] for f in spec.inputs()})
