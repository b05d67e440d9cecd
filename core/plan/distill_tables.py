"""The distillation paper's tables (the data of Figures 2, B.1, B.3, B.4, B.5) as typed specs of
one config: every method's policies at every length bias, beta (tau for IPO) chosen on the
validation prompts (§6.1), and the paired Wald tests of §6.2."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from core.plan.cells import ADVANTAGE_KEY, CellPlan
from core.plan.paths import fmt
from core.report.spec_types import CellSpec, Column, Row, SeedFiles, Selection, Table, Wald
from core.vocab import GAMMA_LABELS, METHOD_LABELS

#: the probe quantities of Figure B.1 (the panels; its table shows the first three)
B1_PANELS = ("preferred_log_likelihood", "dispreferred_log_likelihood", "kl_loss_ref", "loss")
DISTILLED = ("ddpo", "dpdpo", "edpo", "pdpo")
DIRECT = ("dpo", "ipo")


def keep_runs(table: Table, runs: set[str]) -> Table:
    """``table`` without the cells that read a model outside ``runs`` (metrics folders; rows left
    empty are dropped): such models are trained only for ``report.rows: all`` (``make all-tables``)."""
    rows, dropped = [], False
    for row in table.rows:
        cells = {k: c for k, c in row.cells.items() if all(os.path.dirname(f) in runs for f in c.inputs())}
        dropped = dropped or len(cells) < len(row.cells)
        if cells:
            rows.append(replace(row, cells=cells))
    if not dropped:
        return replace(table, rows=tuple(rows))
    note = ("–: a model no claim or sanity gate reads, left out of this table and not trained by `make demo` "
            "(`report.rows: claims`); `make all-tables` trains and shows it.")  # fmt: skip
    return replace(table, rows=tuple(rows), footnote=" ".join(x for x in (table.footnote, note) if x))


class DistillTables(CellPlan):
    """The distillation paper's tables of one config."""

    def biases(self) -> list[float]:
        return [float(b) for b in self.cfg["distill"]["biases"]]

    def methods(self) -> list[str]:
        return list(self.cfg["distill"]["methods"])

    def bias_columns(self) -> tuple[Column, ...]:
        """One column per length bias, with the bootstrap interval keys."""
        return tuple(Column(f"bias = {fmt(b)}", ADVANTAGE_KEY, 1.0, 3, ("metrics/ci_low", "metrics/ci_high"), float(b))
                     for b in self.cfg["distill"]["biases"])  # fmt: skip

    def per_bias(self, cell_of: Callable[[float], CellSpec]) -> dict[str, CellSpec]:
        """A row's cells: ``cell_of(bias)`` under each bias column."""
        return {c.label: cell_of(b) for c, b in zip(self.bias_columns(), self.biases(), strict=True)}

    def figure2(self) -> Table:
        rows = tuple(Row(METHOD_LABELS[m], self.per_bias(lambda b, m=m: self.selected(m, b, "oracle_test")))
                     for m in self.methods())  # fmt: skip
        return Table("figure2", "Figure 2 (data): oracle-reward advantage over SFT vs length bias",
                     "Mean oracle reward of policy samples on test prompts minus the SFT policy's, with bootstrap "
                     "95% intervals; beta (tau for IPO) chosen on the validation prompts (shown in parentheses). "
                     f"{self.note}", "Method", self.bias_columns(), rows)  # fmt: skip

    def figure2_wald(self) -> Table | None:
        methods = self.methods()
        rows = []
        for a in [m for m in DISTILLED if m in methods]:
            for b in [m for m in DIRECT if m in methods]:
                cells = self.per_bias(
                    lambda bias, a=a, b=b: Wald(
                        (self.selected(a, bias, "oracle_test"), self.selected(b, bias, "oracle_test")),
                        "metrics/rewards",
                    )
                )
                rows.append(Row(f"{METHOD_LABELS[a]} vs {METHOD_LABELS[b]}", cells))
        if not rows:
            return None
        cols = tuple(Column(c.label, "metrics/rewards", 1.0, 4) for c in self.bias_columns())
        return Table("figure2_wald", "Figure 2 (tests): Wald test p-values between methods",
                     f"Two-sided paired Wald tests of equal mean oracle reward on the test prompts. {self.note}",
                     "Comparison", cols, tuple(rows))  # fmt: skip

    def figure_b4(self) -> Table:
        rows = []
        for m in self.methods():
            g, hp = self.p.gamma_modes(m)[0], ("τ" if m == "ipo" else "β")
            for beta in self.p.distill_hparams(m):
                cells = self.per_bias(
                    lambda b, m=m, beta=beta, g=g: SeedFiles(self.distill_seed_files(m, b, beta, g, "oracle_val"))
                )
                rows.append(Row(f"{hp} = {fmt(beta)}", cells, METHOD_LABELS[m], beta))
        return Table("figureB4", "Figure B.4 (data): validation oracle advantage across beta / tau",
                     f"Validation-prompt oracle advantage of every hyper-parameter setting. {self.note}",
                     "Setting", self.bias_columns(), tuple(rows))  # fmt: skip

    def figure_b5(self) -> Table:
        rows = tuple(
            Row(
                GAMMA_LABELS[g],
                self.per_bias(lambda b, g=g: Selection(self.candidates("edpo", b, [g], "oracle_val"), ADVANTAGE_KEY)),
            )
            for g in ("linear", "constant")
        )
        return Table("figureB5", "Figure B.5 (data): e-DPO with and without annealing of gamma",
                     f"Validation oracle advantage at the best beta per bias. {self.note}",
                     "e-DPO gamma", self.bias_columns(), rows)  # fmt: skip

    def figure_b3(self) -> Table:
        d = self.cfg["distill"]
        cols = tuple(Column(f"b = {fmt(b)}", f"metrics/member_fraction/{m}", 100, 1)
                     for b, m in zip(d["ensemble_b"], self.p.ensemble_members(), strict=True))  # fmt: skip
        modes = self.p.gamma_modes("edpo")[:1]
        rows = tuple(Row(f"bias = {fmt(b)}", {c.label: Selection(self.candidates("edpo", b, modes, "train"),
                                                                 ADVANTAGE_KEY) for c in cols}, None, b)
                     for b in self.biases())  # fmt: skip
        return Table("figureB3", "Figure B.3 (data): which ensemble reward model e-DPO matches, by bias",
                     "Share (%) of training examples on which each r_{rho,b} attained the minimum of the "
                     f"distillation loss, for the e-DPO policy selected on validation. {self.note}",
                     "Length bias", cols, rows)  # fmt: skip

    def figure_b1(self) -> Table:
        b1 = self.cfg["report"]["figureB1"]
        cols = tuple(Column(k, f"metrics/probes/{k}", 1.0, 3) for k in B1_PANELS[:3])
        rows = tuple(Row(METHOD_LABELS[m], {c.label: SeedFiles(self.distill_seed_files(m, b1["bias"], b1["beta"], g,
                                                                                       "train")) for c in cols})
                     for m, g in self.b1_series())  # fmt: skip
        return Table("figureB1", "Figure B.1 (data): likelihood collapse at the end of training",
                     f"Probe-set log-likelihoods and KL(pi_ref || pi) after training, bias {fmt(b1['bias'])}, "
                     f"beta {fmt(b1['beta'])}. {self.note}", "Method", cols, rows)  # fmt: skip

    def tables(self) -> dict[str, Table]:
        """Every table of the distillation paper this config has."""
        methods = self.methods()
        out = {"figure2": self.figure2(), "figure2_wald": self.figure2_wald(), "figureB4": self.figure_b4()}
        if "edpo" in methods and self.cfg["distill"]["gamma"]["compare_constant"]:
            out["figureB5"] = self.figure_b5()
        if "edpo" in methods:
            out["figureB3"] = self.figure_b3()
        if self.b1_series():
            out["figureB1"] = self.figure_b1()
        return {name: table for name, table in out.items() if table is not None}
