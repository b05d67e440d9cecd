"""Every table, figure, claim, gate and the report outline of one config, as typed specs
(core.report.spec_types) that name metrics files: a rule asks for exactly the files its table
reads, and through them only the models it needs. The parts live in their own modules:

* core.plan.dr_tables — the DR paper's tables; core.plan.distill_tables — the distillation
  paper's; core.plan.claim_plan — claims and gates; core.plan.report_outline — figures and the
  report's outline; core.plan.cells — the files and selections they share.
"""

from __future__ import annotations

import os
from typing import Any

from core.plan import report_outline
from core.plan.claim_plan import ClaimPlan
from core.plan.distill_tables import DistillTables, keep_runs
from core.plan.dr_tables import DRTables
from core.report.paper_claims import Claim
from core.report.spec_types import ClaimCell, FigureSpec, GateSpec, Series, SettingsTable, Table


class Specs:
    """The specs of one config (a :class:`core.plan.workflow.Pipeline`), each built once."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline, self.cfg, self.paths = pipeline, pipeline.cfg, pipeline.paths
        self.dr, self.distill = DRTables(pipeline), DistillTables(pipeline)
        self.claim_plan = ClaimPlan(pipeline)
        self._tables: dict[str, Table | SettingsTable] | None = None

    # ------------------------------------------------------------------ tables
    def tables(self) -> dict[str, Table | SettingsTable]:
        """Every table spec by name: the DR paper's, the distillation paper's (with ``report.rows:
        claims`` only the cells whose models a claim or gate reads), the settings tables."""
        if self._tables is None:
            distill = self.distill.tables()
            if self.cfg["report"]["rows"] != "all":
                runs = self.claim_runs()
                distill = {n: t for n, t in ((n, keep_runs(t, runs)) for n, t in distill.items()) if t.rows}
            self._tables = {**self.dr.tables(), **distill, **self.dr.settings_tables()}
        return self._tables

    def table_files(self, name: str) -> list[str]:
        return self.tables()[name].inputs()

    # ------------------------------------------------------------------ claims
    def claim_cells(self, claim: Claim) -> list[ClaimCell]:
        return self.claim_plan.claim_cells(claim)

    def claims(self) -> dict[str, list[ClaimCell]]:
        return self.claim_plan.claims()

    def gates(self) -> dict[str, GateSpec]:
        return self.claim_plan.gates()

    def learning_families(self) -> dict[str, Series]:
        return self.claim_plan.learning_families()

    def claim_files(self) -> list[str]:
        return self.claim_plan.claim_files()

    def claim_runs(self) -> set[str]:
        """The metrics folders (one per trained model and seed) that the claims table reads."""
        return {os.path.dirname(f) for f in self.claim_files()}

    # ------------------------------------------------------- figures and report
    def figures(self) -> list[str]:
        return report_outline.figure_names(self.tables())

    def figure(self, name: str) -> FigureSpec:
        return report_outline.figure_spec(name, self.tables(), self.claim_plan)

    def figure_files(self, name: str) -> list[str]:
        return self.figure(name).inputs()

    def theory_names(self) -> list[str]:
        return list(self.cfg["theory"]["experiments"])

    def ablation_rule(self) -> bool:
        """Whether the DAG has the rule ``label_noise_ablation`` (``make ablation``): a synthetic world,
        whose label noise can be taken out, with a TV grid for ``report.rm_variant``."""
        grid = self.cfg["dr"]["reward"]["grids"].get(self.cfg["report"].get("rm_variant"), {}).get("tv", [])
        return self.cfg["data"]["kind"] == "synthetic" and any(r > 0 for r in grid)

    def ablation(self) -> bool:
        """Whether the report's claims section holds the label-noise ablation (``report.ablation``)."""
        return self.ablation_rule() and bool(self.cfg["report"].get("ablation", False))

    def ablation_inputs(self) -> list[str]:
        """The config's own reward-model TV grid files the ablation sets beside the noise-free world's."""
        from core.report.ablation import rm_files

        return sorted(
            {f for b in self.pipeline.dr_benchmarks() for fs in rm_files(self.pipeline, b).values() for f in fs}
        )

    def report_inputs(self) -> dict[str, list[str]]:
        inputs = report_outline.report_inputs(self.paths, list(self.tables()), self.figures(), self.theory_names())
        return {**inputs, "ablation": [self.paths.ablation("md")] if self.ablation() else []}

    def report_sections(self) -> list[dict]:
        names = (list(self.tables()), self.figures(), self.theory_names())
        return report_outline.report_sections(*names, ablation="ablation/label_noise.md" if self.ablation() else None)
