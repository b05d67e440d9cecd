"""Table, figure and report specs of both papers, computed from the config.

A spec names the metrics files of each cell (core.report.tables reads the numbers), so a table's
rule asks for exactly the files that table reads, and through them only the models it needs.
Adding a table is one entry in :meth:`Specs.tables`; rows come from the grids
(core.plan.grids), file paths from the one path scheme (core.plan.paths).
"""

from __future__ import annotations

import os
from typing import Any

from core.eval.reference import REFERENCE_LABELS
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
from core.vocab import DIVERGENCE_LABELS, GAMMA_LABELS, METHOD_LABELS, REWARDBENCH2_SUBSETS, REWARDBENCH_SECTIONS

SECTION_NAMES = tuple(REWARDBENCH_SECTIONS)
#: the DR paper's tables in the report's order
DR_ORDER = (
    "table1",
    "table2",
    "table3",
    "table3_oracle",
    "table4",
    "table5",
    "table6",
    "table8",
    "table9",
    "table10",
    "table11",
    "table12",
    "table14",
    "table15",
    "table_rb2",
    "table7",
    "table13",
)
#: figure -> the data tables shown under it (distillation paper's order)
DISTILL_ORDER = (
    ("figure2", ("figure2", "figure2_wald")),
    ("figureB1", ("figureB1",)),
    ("figureB3", ("figureB3",)),
    ("figureB4", ("figureB4",)),
    ("figureB5", ("figureB5",)),
)
FIGURES = {
    "figure2": {"kind": "bias_lines", "table": "figure2", "ylabel": "oracle reward advantage over SFT"},
    "figureB1": {"kind": "curves"},
    "figureB3": {"kind": "stacked_bars", "table": "figureB3", "ylabel": "share of examples (%)"},
    "figureB4": {"kind": "sweep", "table": "figureB4", "ylabel": "validation oracle advantage"},
    "figureB5": {"kind": "bias_lines", "table": "figureB5", "ylabel": "validation oracle advantage"},
    "learning_curves": {"kind": "learning_curves"},
}
#: Figure B.1's methods and the gamma schedule each is shown with
B1_SERIES = (("dpo", "none"), ("pdpo", "linear"), ("ddpo", "none"), ("dpdpo", "linear"))
B1_PANELS = ["preferred_log_likelihood", "dispreferred_log_likelihood", "kl_loss_ref", "loss"]


def table_spec(name: str, title: str, caption: str, row_header: str, columns: list, rows: list) -> dict:
    """A table spec as core.report.tables reads it (rows already hold their cells)."""
    return {"name": name, "title": title, "caption": caption, "row_header": row_header,
            "columns": columns, "rows": rows}  # fmt: skip


def make_spec(name: str, title: str, caption: str, row_header: str, columns: list, rows: list) -> dict:
    """Attach each row's files to the columns' sources (cells) and drop the source names."""
    out_rows = []
    for r in rows:
        cells = {c["label"]: {"files": r["files"][c["source"]]} for c in columns}
        out_rows.append({"label": r["label"], "group": r.get("group"), "cells": cells})
    cols = [{k: v for k, v in c.items() if k != "source"} for c in columns]
    return table_spec(name, title, caption, row_header, cols, out_rows)


def spec_files(spec: dict) -> list[str]:
    """Every metrics file a spec reads (the table rule's inputs)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("files", "select") and isinstance(v, list):
                    out.extend(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec.get("rows", []) if spec.get("kind") != "settings" else [])
    return sorted(set(out))


def _rho_label(prefix: str, rho: float) -> str:
    return f"{prefix} ρ = {fmt(rho)}"


class Specs:
    """Every table and figure spec of one config (a :class:`core.plan.workflow.Pipeline`)."""

    def __init__(self, pipeline: Any) -> None:
        self.p, self.cfg, self.paths = pipeline, pipeline.cfg, pipeline.paths
        self.note = self.cfg["report"]["note"]
        self._tables: dict[str, dict] | None = None

    # ------------------------------------------------------------------ files
    def seed_files(self, dir_of: Any, leaf: str) -> list[str]:
        return [self.paths.metrics(dir_of(s), leaf) for s in self.p.seeds()]

    # ------------------------------------------------------------ row builders
    def rm_rows(self, variant: str, div: str, benches: list, group: str | None = None) -> list:
        rows = []
        for v, d, rho in self.p.rm_grid(variant, div):
            label = "BTL RM" if d == "none" else _rho_label("DR RM", rho)
            files = {b: self.seed_files(lambda s, v=v, d=d, rho=rho: self.paths.rm(v, d, rho, s), b) for b in benches}
            rows.append({"label": label, "group": group, "files": files})
        return rows

    def ppo_rows(self, benches: list, versions: list | None = None) -> list:
        variant = self.cfg["dr"]["ppo"]["variant"]
        rows = []
        for version, d, rho in self.p.ppo_grid(versions):
            label = "BTL RM, Std. PPO" if version == "none" else _rho_label(f"DR PPO ({version})", rho)
            files = {
                b: self.seed_files(lambda s, ver=version, d=d, rho=rho: self.paths.ppo(variant, ver, d, rho, s), b)
                for b in benches
            }
            rows.append({"label": label, "group": None, "files": files})
        return rows

    def dpo_rows(self, benches: list) -> list:
        variant = self.cfg["dr"]["dpo"]["variant"]
        rows = []
        for d, rho in self.p.dpo_grid():
            label = "Std. DPO" if d == "none" else _rho_label("DR DPO", rho)
            files = {b: self.seed_files(lambda s, d=d, rho=rho: self.paths.dpo(variant, d, rho, s), b) for b in benches}
            rows.append({"label": label, "group": None, "files": files})
        return rows

    def reference_rows(self, variant: str, benches: list, group: str | None = None) -> list:
        """The reference rows (core.eval.reference) under a table of ``variant``'s benchmarks."""
        rows = []
        for rule in self.p.reference_rules():
            files = {b: [self.paths.metrics(self.paths.reference(variant, rule), b)] for b in benches}
            rows.append({"label": REFERENCE_LABELS[rule], "group": group, "files": files})
        return rows

    # --------------------------------------------------------- column builders
    def score_prefix(self, kind: str) -> str:
        """Where a metrics file keeps its numbers: reward models at the top, policies per mode."""
        if kind == "rm":
            return "metrics"
        mode = self.cfg["report"]["ppo_mode"] if kind == "ppo" else self.cfg["report"]["dpo_mode"]
        return f"metrics/{mode}"

    def bench_columns(self, kind: str, benches: list) -> list:
        cols = []
        for b in benches:
            key = "accuracy" if b == "id" else "scores/overall"
            cols.append(
                {"label": self.p.bench_label(b), "source": b, "key": f"{self.score_prefix(kind)}/{key}", "scale": 100}
            )
        return cols

    def section_columns(self, kind: str) -> list:
        p = self.score_prefix(kind)
        cols = [
            {"label": s, "source": "rewardbench", "key": f"{p}/scores/sections/{s}", "scale": 100}
            for s in SECTION_NAMES
        ]
        return cols + [{"label": "Avg.", "source": "rewardbench", "key": f"{p}/scores/overall", "scale": 100}]

    def rb_subsets(self, section: str) -> list[str]:
        """Official RewardBench subsets of a section that this config's benchmark covers."""
        spec = self.cfg["eval"]["benchmarks"].get("rewardbench", {})
        targets = set(spec.get("subset_map", {}).values())
        members = REWARDBENCH_SECTIONS[section]
        return [s for s in members if s in targets] if targets else list(members)

    def subset_columns(self, kind: str, sections: tuple = SECTION_NAMES, with_sections: bool = True) -> list:
        p = self.score_prefix(kind)
        cols = []
        for s in sections:
            for sub in self.rb_subsets(s):
                cols.append({"label": sub, "source": "rewardbench", "key": f"{p}/scores/subsets/{sub}", "scale": 100})
            if with_sections:
                cols.append(
                    {
                        "label": f"{s} (section)",
                        "source": "rewardbench",
                        "key": f"{p}/scores/sections/{s}",
                        "scale": 100,
                    }
                )
        if with_sections:
            cols.append({"label": "Avg.", "source": "rewardbench", "key": f"{p}/scores/overall", "scale": 100})
        return cols

    # ----------------------------------------------------- the DR paper's tables
    def dr_catalogue(self) -> dict[str, tuple]:
        """The DR paper's tables as data: name -> (needs RewardBench, title, caption, row header,
        columns, rows, variant of the reference rows appended under them). Adding a table is one
        entry here."""
        rep, note, rb = self.cfg["report"], self.note, ["rewardbench"]
        rmv, ood, ppo_v = rep["rm_variant"], self.p.dr_benchmarks_ood(), [rep["ppo_version"]]
        reasoning = ("Reasoning",)
        rows8 = []
        for variant, grids in self.cfg["dr"]["reward"]["grids"].items():
            for div in grids:
                rows8 += self.rm_rows(variant, div, ood, group=f"{variant}; {DIVERGENCE_LABELS[div]}")
            rows8 += self.reference_rows(variant, ood, group=f"{variant}; reference")
        ppo_var, dpo_var = self.cfg["dr"]["ppo"]["variant"], self.cfg["dr"]["dpo"]["variant"]
        rm_reasoning, ppo_reasoning = (
            self.subset_columns("rm", reasoning, False),
            self.subset_columns("ppo", reasoning, False),
        )

        cat: dict[str, tuple] = {
            "table1": (True, "Table 1: reward models on RewardBench (BTL vs DR, TV)",
                       f"Pairwise accuracy (%) by RewardBench section, trained on variant '{rmv}'. {note}",
                       "Reward Model", self.section_columns("rm"), self.rm_rows(rmv, "tv", rb), rmv),
            "table2": (True, "Table 2: reward models on RewardBench's reasoning subsets",
                       f"Accuracy (%) per reasoning subset, variant '{rmv}', TV. {note}",
                       "Reward Model", rm_reasoning, self.rm_rows(rmv, "tv", rb), rmv),
            "table3": (False, "Table 3: PPO and DR-PPO (vA, vB), in- and out-of-distribution",
                       f"Policy accuracy (%) with {rep['ppo_mode']} scoring; reward model and PPO share rho. {note}",
                       "Model", self.bench_columns("ppo", ood), self.ppo_rows(ood), ppo_var),
            "table4": (True, "Table 4: DR-PPO on RewardBench sections",
                       f"Policy accuracy (%) by section ({rep['ppo_mode']}). {note}",
                       "Reward Model", self.section_columns("ppo"), self.ppo_rows(rb, ppo_v), ppo_var),
            "table5": (True, "Table 5: DR-PPO on RewardBench's reasoning subsets",
                       f"Policy accuracy (%) per reasoning subset. {note}",
                       "Reward Model", ppo_reasoning, self.ppo_rows(rb, ppo_v), ppo_var),
            "table6": (False, "Table 6: DPO vs DR-DPO, in- and out-of-distribution",
                       f"Policy accuracy (%) with {rep['dpo_mode']} scoring. {note}",
                       "Model", self.bench_columns("dpo", ood), self.dpo_rows(ood), dpo_var),
            "table8": (False, "Table 8: reward models by dataset variant and divergence",
                       f"Pairwise accuracy (%); groups are training-set variants and divergences. {note}",
                       "Reward Model", self.bench_columns("rm", ood), rows8, None),
        }  # fmt: skip
        for name, (variant, div) in rep["subset_tables"].items():
            cat[name] = (True, f"{name.replace('table', 'Table ')}: reward models per RewardBench subset "
                         f"(variant '{variant}', {DIVERGENCE_LABELS[div]})",
                         f"Accuracy (%) per subset, section and average. {note}",
                         "Reward Model", self.subset_columns("rm"), self.rm_rows(variant, div, rb),
                         variant)  # fmt: skip
        cat["table14"] = (True, "Table 14: PPO per RewardBench subset",
                          f"Policy accuracy (%) per subset ({rep['ppo_mode']}). {note}",
                          "Model", self.subset_columns("ppo"), self.ppo_rows(rb, ppo_v), ppo_var)  # fmt: skip
        cat["table15"] = (True, "Table 15: DPO per RewardBench subset",
                          f"Policy accuracy (%) per subset ({rep['dpo_mode']}). {note}",
                          "Model", self.subset_columns("dpo"), self.dpo_rows(rb), dpo_var)  # fmt: skip
        return cat

    def dr_tables(self) -> dict[str, dict]:
        """The DR paper's table specs this config has (RewardBench tables need that benchmark)."""
        has_rb = "rewardbench" in self.cfg["eval"]["benchmarks"]
        specs = {}
        for name, (needs_rb, title, caption, header, cols, rows, ref_variant) in self.dr_catalogue().items():
            if needs_rb and not has_rb:
                continue
            if ref_variant is not None:
                rows = rows + self.reference_rows(ref_variant, list(dict.fromkeys(c["source"] for c in cols)))
            specs[name] = make_spec(name, title, caption, header, cols, rows)
        specs["table3_oracle"] = self.ppo_oracle_table()
        if "rewardbench2" in self.cfg["eval"]["benchmarks"]:
            specs["table_rb2"] = self.rewardbench2_table()
        return specs

    def rewardbench2_table(self) -> dict:
        """RewardBench 2 (core.eval.rewardbench2): best-of-4 accuracy per subset, Ties' weighted score
        and their mean, for the DR reward models (BTL vs DR, TV, ``report.rm_variant``) and the
        DPO-family policies of the DR experiments (DPO vs DR-DPO, ``report.dpo_mode``)."""
        rep, bench = self.cfg["report"], "rewardbench2"
        keys = [*(f"scores/subsets/{s}" for s in REWARDBENCH2_SUBSETS), "scores/overall"]
        labels = [*REWARDBENCH2_SUBSETS, "Avg."]

        def columns(kind: str) -> list:
            return [{"label": lab, "source": bench, "key": f"{self.score_prefix(kind)}/{key}", "scale": 100}
                    for lab, key in zip(labels, keys, strict=True)]  # fmt: skip

        rm_rows = self.rm_rows(rep["rm_variant"], "tv", [bench], group=f"reward models ({rep['rm_variant']}, TV)")
        dpo_rows = [{**r, "group": f"DPO policies ({rep['dpo_mode']})"} for r in self.dpo_rows([bench])]
        title = "RewardBench 2: DR reward models and DPO policies"
        caption = (
            "Best-of-4 accuracy (%) per subset (a tie at the top shares the credit), Ties' weighted score "
            f"and their mean, as the official code (allenai/reward-bench, scripts/run_v2.py). {self.note}"
        )
        spec = make_spec("table_rb2", title, caption, "Model", columns("rm"), rm_rows)
        policies = make_spec("table_rb2", title, caption, "Model", columns("dpo"), dpo_rows)
        for row in policies["rows"]:
            for col in policies["columns"]:
                row["cells"][col["label"]]["key"] = col["key"]
        spec["rows"] += policies["rows"]
        refs = self.reference_rows(rep["rm_variant"], [bench], group=f"{rep['rm_variant']}; reference")
        spec["rows"] += make_spec("table_rb2", title, caption, "Model", columns("rm"), refs)["rows"]
        return spec

    def oracle_domains(self) -> list[str]:
        """Domains whose oracle reward the PPO table shows one by one (the synthetic world's; a
        real config's prompts carry no domain the config knows in advance: overall only)."""
        if self.cfg["data"]["kind"] != "synthetic":
            return []
        from core.data.synthetic import SUBSETS

        return list(SUBSETS)

    def ppo_oracle_table(self) -> dict:
        """DR-PPO judged by the oracle reward of its samples (DR paper §5.2's policies; the world's
        oracle is the judge): mean over domains in and out of distribution, the advantage over
        pi_ref's samples on the same prompts, and each domain out of distribution; pi_ref's own
        row from the same files."""
        cols = []
        for split, name in (("id", "ID"), ("ood", "OOD")):
            cols += [{"label": f"{name} reward", "source": f"oracle_{split}", "key": "metrics/overall/mean"},
                     {"label": f"{name} adv. over π_ref", "source": f"oracle_{split}",
                      "key": "metrics/overall/advantage"}]  # fmt: skip
        cols += [{"label": f"OOD {d}", "source": "oracle_ood", "key": f"metrics/domains/{d}/mean"}
                 for d in self.oracle_domains()]  # fmt: skip
        cols = [{**c, "scale": 1, "digits": 3} for c in cols]
        rows = self.ppo_rows(["oracle_id", "oracle_ood"])
        spec = make_spec("table3_oracle", "Table 3b: PPO and DR-PPO judged by the oracle reward of their samples",
                         "Mean oracle reward r*(x, y) of one sample per prompt, equal weight over domains, "
                         f"{self.cfg['eval']['oracle_prompts_per_domain']} prompts per domain; ID: the variant's "
                         "test prompts, OOD: the out-of-distribution benchmark's prompts. Advantage: paired by "
                         f"prompt against π_ref's samples. {self.note}", "Model", cols, rows)  # fmt: skip
        base = rows[0]["files"]
        ref_cells = {c["label"]: {"files": base[c["source"]], "key": c["key"].replace("metrics/", "metrics/reference/")}
                     for c in cols if "advantage" not in c["key"]}  # fmt: skip
        spec["rows"].append({"label": "SFT (π_ref)", "group": "reference", "cells": ref_cells})
        return spec

    # ---------------------------------------------- the distillation paper's tables
    def distill_seed_files(self, method: str, bias: float, beta: float, gamma: str, leaf: str) -> list[str]:
        return self.seed_files(lambda s: self.paths.distill(method, bias, beta, gamma, s), leaf)

    def candidates(self, method: str, bias: float, modes: list, leaf: str) -> list:
        """Model selection over beta (tau for IPO) on the validation split (distillation paper §6.1)."""
        hp = "τ" if method == "ipo" else "β"
        return [
            {
                "label": f"{hp}={fmt(beta)}",
                "select": self.distill_seed_files(method, bias, beta, g, "oracle_val"),
                "files": self.distill_seed_files(method, bias, beta, g, leaf),
            }
            for beta in self.p.distill_hparams(method)
            for g in modes
        ]

    def selected(self, method: str, bias: float, leaf: str, gamma: str | None = None) -> dict:
        modes = [gamma] if gamma else self.p.gamma_modes(method)[:1]
        return {
            "candidates": self.candidates(method, bias, modes, leaf),
            "select_key": "metrics/advantage",
            "select": "max",
        }

    def bias_columns(self) -> list:
        """One column per length bias, with the bootstrap interval keys."""
        return [
            {
                "label": f"bias = {fmt(b)}",
                "key": "metrics/advantage",
                "scale": 1.0,
                "digits": 3,
                "x": float(b),
                "ci_keys": ["metrics/ci_low", "metrics/ci_high"],
            }
            for b in self.cfg["distill"]["biases"]
        ]

    def b1_series(self) -> list[tuple[str, str]]:
        """Figure B.1's (method, gamma) pairs present in this config."""
        out = []
        for m, g in B1_SERIES:
            if m in self.cfg["distill"]["methods"]:
                out.append((m, g if g in self.p.gamma_modes(m) else self.p.gamma_modes(m)[0]))
        return out

    def distill_tables(self) -> dict[str, dict]:
        """The distillation paper's tables; with ``report.rows: claims`` only their cells whose runs a
        claim or a sanity gate reads (:meth:`claim_rows`)."""
        specs = self._distill_tables()
        if self.cfg["report"]["rows"] == "all":
            return specs
        runs = self.claim_runs()
        return {n: spec for n, spec in ((n, self.claim_rows(s, runs)) for n, s in specs.items()) if spec["rows"]}

    def claim_runs(self) -> set[str]:
        """The metrics folders (one per trained model and seed) that the claims table reads."""
        return {os.path.dirname(f) for f in self.claim_files()}

    @staticmethod
    def claim_rows(spec: dict, runs: set[str]) -> dict:
        """``spec`` without the cells that read a model outside ``runs`` (:meth:`claim_runs`; rows
        left empty are dropped): such models are trained only for ``report.rows: all``
        (``make all-tables``)."""
        rows, dropped = [], False
        for row in spec["rows"]:
            cells = {
                label: cell
                for label, cell in row["cells"].items()
                if all(os.path.dirname(f) in runs for f in spec_files({"rows": [cell]}))
            }
            dropped = dropped or len(cells) < len(row["cells"])
            if cells:
                rows.append({**row, "cells": cells})
        if not dropped:
            return {**spec, "rows": rows}
        note = ("–: a model no claim or sanity gate reads, left out of this table and not trained by `make demo` "
                "(`report.rows: claims`); `make all-tables` trains and shows it.")  # fmt: skip
        return {**spec, "rows": rows, "footnote": " ".join(x for x in (spec.get("footnote"), note) if x)}

    def _distill_tables(self) -> dict[str, dict]:
        d, note = self.cfg["distill"], self.note
        biases, methods, cols = [float(b) for b in d["biases"]], list(d["methods"]), self.bias_columns()
        specs = {}
        rows = [
            {
                "label": METHOD_LABELS[m],
                "group": None,
                "cells": {c["label"]: self.selected(m, b, "oracle_test") for c, b in zip(cols, biases, strict=True)},
            }
            for m in methods
        ]
        specs["figure2"] = table_spec(
            "figure2",
            "Figure 2 (data): oracle-reward advantage over SFT vs length bias",
            (
                "Mean oracle reward of policy samples on test prompts minus the SFT policy's, "
                "with bootstrap 95% intervals; beta (tau for IPO) chosen on the validation "
                f"prompts (shown in parentheses). {note}"
            ),
            "Method",
            cols,
            rows,
        )
        wald_rows = []
        for a in [m for m in ("ddpo", "dpdpo", "edpo", "pdpo") if m in methods]:
            for b in [m for m in ("dpo", "ipo") if m in methods]:
                cells = {
                    c["label"]: {
                        "wald": [self.selected(a, bias, "oracle_test"), self.selected(b, bias, "oracle_test")],
                        "samples_key": "metrics/rewards",
                    }
                    for c, bias in zip(cols, biases, strict=True)
                }
                wald_rows.append({"label": f"{METHOD_LABELS[a]} vs {METHOD_LABELS[b]}", "group": None, "cells": cells})
        if wald_rows:
            specs["figure2_wald"] = table_spec(
                "figure2_wald",
                "Figure 2 (tests): Wald test p-values between methods",
                f"Two-sided paired Wald tests of equal mean oracle reward on the test prompts. {note}",
                "Comparison",
                [{"label": c["label"], "key": "metrics/rewards", "scale": 1.0, "digits": 4} for c in cols],
                wald_rows,
            )
        sweep_rows = []
        for m in methods:
            g, hp = self.p.gamma_modes(m)[0], ("τ" if m == "ipo" else "β")
            for beta in self.p.distill_hparams(m):
                cells = {
                    c["label"]: {"files": self.distill_seed_files(m, b, beta, g, "oracle_val")}
                    for c, b in zip(cols, biases, strict=True)
                }
                sweep_rows.append(
                    {"label": f"{hp} = {fmt(beta)}", "group": METHOD_LABELS[m], "cells": cells, "x": beta}
                )
        specs["figureB4"] = table_spec(
            "figureB4",
            "Figure B.4 (data): validation oracle advantage across beta / tau",
            f"Validation-prompt oracle advantage of every hyper-parameter setting. {note}",
            "Setting",
            cols,
            sweep_rows,
        )
        if "edpo" in methods and d["gamma"]["compare_constant"]:
            rows_b5 = []
            for g in ("linear", "constant"):
                cells = {
                    c["label"]: {
                        "candidates": self.candidates("edpo", b, [g], "oracle_val"),
                        "select_key": "metrics/advantage",
                        "select": "max",
                    }
                    for c, b in zip(cols, biases, strict=True)
                }
                rows_b5.append({"label": GAMMA_LABELS[g], "group": None, "cells": cells})
            specs["figureB5"] = table_spec(
                "figureB5",
                "Figure B.5 (data): e-DPO with and without annealing of gamma",
                f"Validation oracle advantage at the best beta per bias. {note}",
                "e-DPO gamma",
                cols,
                rows_b5,
            )
        if "edpo" in methods:
            mcols = [
                {"label": f"b = {fmt(b)}", "key": f"metrics/member_fraction/{m}", "scale": 100, "digits": 1}
                for b, m in zip(d["ensemble_b"], self.p.ensemble_members(), strict=True)
            ]
            edpo_modes = self.p.gamma_modes("edpo")[:1]
            rows_b3 = [
                {
                    "label": f"bias = {fmt(b)}",
                    "group": None,
                    "x": b,
                    "cells": {
                        c["label"]: {
                            "candidates": self.candidates("edpo", b, edpo_modes, "train"),
                            "select_key": "metrics/advantage",
                            "select": "max",
                        }
                        for c in mcols
                    },
                }
                for b in biases
            ]
            specs["figureB3"] = table_spec(
                "figureB3",
                "Figure B.3 (data): which ensemble reward model e-DPO matches, by bias",
                (
                    "Share (%) of training examples on which each r_{rho,b} attained the minimum of "
                    f"the distillation loss, for the e-DPO policy selected on validation. {note}"
                ),
                "Length bias",
                mcols,
                rows_b3,
            )
        b1 = self.cfg["report"]["figureB1"]
        if self.b1_series():
            pcols = [{"label": k, "key": f"metrics/probes/{k}", "scale": 1.0, "digits": 3} for k in B1_PANELS[:3]]
            prow = []
            for m, g in self.b1_series():
                files = self.distill_seed_files(m, b1["bias"], b1["beta"], g, "train")
                prow.append(
                    {"label": METHOD_LABELS[m], "group": None, "cells": {c["label"]: {"files": files} for c in pcols}}
                )
            specs["figureB1"] = table_spec(
                "figureB1",
                "Figure B.1 (data): likelihood collapse at the end of training",
                (
                    f"Probe-set log-likelihoods and KL(pi_ref || pi) after training, bias {fmt(b1['bias'])}, "
                    f"beta {fmt(b1['beta'])}. {note}"
                ),
                "Method",
                pcols,
                prow,
            )
        return specs

    def settings_tables(self) -> dict[str, dict]:
        """Tables 7 and 13: the training settings, read from the config."""

        def row(name, *vals):
            return [name] + [v if not isinstance(v, float) else fmt(v) for v in vals]

        rm, ppo, dpo = self.cfg["dr"]["reward"], self.cfg["dr"]["ppo"], self.cfg["dr"]["dpo"]
        keys = sorted(set(rm["train"]) | set(ppo["train"]) | set(dpo["train"]))
        t7 = [
            row("Base model", self.p.base_model("reward")),
            row("Training pairs", rm["n_train"]),
            row("Average iterates", rm["average_iterates"]),
        ]
        t7 += [row(k, rm["train"][k]) for k in sorted(rm["train"])]
        lora = self.cfg["models"]["reward"].get("lora")
        if lora:
            t7 += [row(f"LoRA {k}", v) for k, v in sorted(lora.items())]
        ref = self.p.reference_policy("dr")
        t13 = [
            row("Base model", ref, ref),
            row("Training pairs", ppo["n_train"], dpo["n_train"]),
            row("KL coefficient beta", ppo["train"].get("kl_coef"), dpo["beta"]),
        ]
        t13 += [row(k, ppo["train"].get(k), dpo["train"].get(k)) for k in keys if k != "kl_coef"]
        return {
            "table7": {
                "name": "table7",
                "kind": "settings",
                "title": "Table 7: reward-model training settings",
                "caption": "Read from the config.",
                "columns": ["Setting", "Value"],
                "rows": t7,
            },
            "table13": {
                "name": "table13",
                "kind": "settings",
                "title": "Table 13: PPO and DPO training settings",
                "caption": "Read from the config.",
                "columns": ["Setting", "PPO", "DPO"],
                "rows": t13,
            },
        }

    # ------------------------------------------------------------------ claims
    def _rho_selection(self, dir_of: Any, grid: list, bench: str, prefix: str) -> dict:
        """Rows of ``grid`` (rho values) as selection candidates: the rho with the best seed-mean
        validation accuracy is the treated row (never chosen on a test split)."""
        cands = [{"label": f"ρ={fmt(r)}", "select": self.seed_files(lambda s, r=r: dir_of(r, s), "val"),
                  "files": self.seed_files(lambda s, r=r: dir_of(r, s), bench)} for r in grid]  # fmt: skip
        return {"candidates": cands, "select_key": f"{prefix}/accuracy", "select": "max"}

    def _bench_key(self, prefix: str, bench: str) -> str:
        return f"{prefix}/accuracy" if bench == "id" else f"{prefix}/scores/overall"

    def _dr_claim(self, cid: str, bench: str, kind: str) -> dict | None:
        """A DR-paper paired claim: BTL / PPO / DPO against its DR row with rho chosen on validation
        (``oracle_id`` / ``oracle_ood``: PPO judged by the oracle reward of its samples)."""
        oracle = bench.startswith("oracle_")
        if not oracle and bench not in self.p.dr_benchmarks():
            return None
        p, prefix = self.paths, self.score_prefix(kind)
        if kind == "rm":
            variant = self.cfg["report"]["rm_variant"]
            grid = [r for _, d, r in self.p.rm_grid(variant, "tv") if d == "tv"]
            base = lambda s: p.rm(variant, "none", 0.0, s)  # noqa: E731
            dir_of = lambda r, s: p.rm(variant, "tv", r, s)  # noqa: E731
        elif kind == "dpo":
            variant = self.cfg["dr"]["dpo"]["variant"]
            grid = [r for d, r in self.p.dpo_grid() if d != "none"]
            div = self.cfg["dr"]["dpo"]["divergence"]
            base = lambda s: p.dpo(variant, "none", 0.0, s)  # noqa: E731
            dir_of = lambda r, s: p.dpo(variant, div, r, s)  # noqa: E731
        else:
            variant, div = self.cfg["dr"]["ppo"]["variant"], self.cfg["dr"]["ppo"]["divergence"]
            grid = [r for v, _, r in self.p.ppo_grid(["vA"]) if v == "vA"]
            base = lambda s: p.ppo(variant, "none", "none", 0.0, s)  # noqa: E731
            dir_of = lambda r, s: p.ppo(variant, "vA", div, r, s)  # noqa: E731
        if not grid:
            return None
        key = "metrics/overall/mean" if oracle else self._bench_key(prefix, bench)
        treatment = self._rho_selection(dir_of, grid, bench, prefix)
        models = [base(s) for s in self.p.seeds()] + [dir_of(r, s) for r in grid for s in self.p.seeds()]
        flag_key, flag_bench = f"{prefix}/spread/degenerate", "id" if oracle else bench
        return {"id": cid, "benchmark": bench, "key": key, "scale": 1 if oracle else 100,
                "baseline": {"files": self.seed_files(base, bench)}, "treatment": treatment,
                "degenerate": [[p.metrics(m, flag_bench), flag_key] for m in models]}  # fmt: skip

    def _rho_extremes_claim(self, claim: Claim, div: str) -> dict | None:
        """The ``div`` DR RM at the largest rho against the smallest (core.report.paper_claims.
        LargestVsSmallestRho); against BTL (rho 0) when the grid has one rho."""
        if claim.benchmark not in self.p.dr_benchmarks():
            return None
        tables = self.cfg["report"]["subset_tables"]
        variants = [v for v, d in tables.values() if d == div] or [
            v for v, g in self.cfg["dr"]["reward"]["grids"].items() if div in g]  # fmt: skip
        grid = sorted(r for r in self.cfg["dr"]["reward"]["grids"].get(variants[0], {}).get(div, []) if r > 0) \
            if variants else []  # fmt: skip
        if not grid:
            return None
        grid = grid if len(grid) > 1 else [0.0, *grid]
        v, p, bench = variants[0], self.paths, claim.benchmark
        lo_key, hi_key = self.p.rm_key(v, div, grid[0]), self.p.rm_key(v, div, grid[-1])
        lo, hi = (lambda s: p.rm(*lo_key, s)), (lambda s: p.rm(*hi_key, s))
        models = [lo(s) for s in self.p.seeds()] + [hi(s) for s in self.p.seeds()]
        return {"id": claim.id, "benchmark": bench, "key": self._bench_key("metrics", bench), "scale": 100,
                "baseline": {"files": self.seed_files(lo, bench)},
                "treatment": {"files": self.seed_files(hi, bench)},
                "baseline_label": f"{'BTL RM' if grid[0] == 0 else 'DR RM'} ({div}, ρ={fmt(grid[0])}, variant '{v}')",
                "treatment_label": f"DR RM ({div}, ρ={fmt(grid[-1])}, variant '{v}')",
                "degenerate": [[p.metrics(m, bench), "metrics/spread/degenerate"] for m in models]}  # fmt: skip

    def _theory_claim(self, claim: Claim, measure: TheorySlope | TheoryValue) -> dict | None:
        """A theory experiment's table (a slope's equivalence) or summary number (an exact value)."""
        if measure.experiment not in self.theory_names():
            return None
        cell: dict[str, Any] = {"id": claim.id}
        if isinstance(measure, TheorySlope):
            table = self.paths.table(f"theory_{measure.experiment}", "csv")
            return {**cell, "table": table, "claimed": measure.claimed, "margin": measure.margin}
        cell.update(file=self.paths.metrics("theory", measure.experiment), key=measure.key)
        if measure.reference_key is not None:
            return {**cell, "reference_key": measure.reference_key}
        return {**cell, "reference": measure.reference}

    def _distilled_vs_direct(self, claim: Claim, m: DistilledVsDirect) -> list[dict]:
        d, out = self.cfg["distill"], []
        methods = d["methods"]
        for bias in [float(b) for b in d["biases"] if abs(float(b) - 0.5) >= m.min_distance]:
            for a in [x for x in m.treated if x in methods]:
                for b in [x for x in m.baselines if x in methods]:
                    out.append({
                        "id": f"{claim.id}:{a}-vs-{b}@bias{fmt(bias)}",
                        "benchmark": f"oracle (length bias {fmt(bias)})",
                        "key": "metrics/advantage", "baseline": self.selected(b, bias, "oracle_test"),
                        "treatment": self.selected(a, bias, "oracle_test"),
                        "baseline_label": METHOD_LABELS[b], "treatment_label": METHOD_LABELS[a]})  # fmt: skip
        return out

    def _probe_vs_dpo(self, claim: Claim, m: ProbeVsDPO) -> list[dict]:
        b1, series, out = self.cfg["report"]["figureB1"], dict(self.b1_series()), []
        if "dpo" not in series:
            return out
        base = self.distill_seed_files("dpo", b1["bias"], b1["beta"], series["dpo"], "train")
        for x in [x for x in m.treated if x in series]:
            out.append({
                "id": f"{claim.id}:{x}-vs-dpo", "benchmark": f"probes (bias {fmt(b1['bias'])}, beta {fmt(b1['beta'])})",
                "key": "metrics/probes/preferred_log_likelihood", "baseline": {"files": base},
                "treatment": {"files": self.distill_seed_files(x, b1["bias"], b1["beta"], series[x], "train")},
                "baseline_label": "DPO", "treatment_label": METHOD_LABELS[x]})  # fmt: skip
        return out

    def claim_cells(self, claim: Claim) -> list[dict]:
        """The cells this config measures ``claim`` on: its comparison (``claim.measure``) turned
        into this config's metrics files; none when the config lacks what it compares."""
        m = claim.measure
        if isinstance(m, RobustVsPlain):
            cells = [self._dr_claim(claim.id, claim.benchmark, m.family)]
        elif isinstance(m, LargestVsSmallestRho):
            cells = [self._rho_extremes_claim(claim, m.divergence)]
        elif isinstance(m, TheorySlope | TheoryValue):
            cells = [self._theory_claim(claim, m)]
        elif isinstance(m, DistilledVsDirect):
            cells = self._distilled_vs_direct(claim, m)
        elif isinstance(m, ProbeVsDPO):
            cells = self._probe_vs_dpo(claim, m)
        elif m is None:
            cells = []
        else:
            raise TypeError(f"claim {claim.id}: no plan for a {type(m).__name__} comparison")
        return [c for c in cells if c is not None]

    def claims(self) -> dict[str, list]:
        """Claim id (core.report.paper_claims.CLAIMS) -> the cells this config measures it on."""
        return {c.id: cells for c in CLAIMS if (cells := self.claim_cells(c))}

    def learning_families(self) -> dict[str, dict]:
        """The model families whose budget is chosen from the validation-loss curve (the gates'
        core.report.paper_claims.Converged): ``rm`` the BTL reward model, ``dpo`` DPO, and
        ``distill`` the distillation paper's DPO at the bias nearest 0.5."""
        p, seeds = self.paths, self.p.seeds()
        variant, dpo_variant = self.cfg["report"]["rm_variant"], self.cfg["dr"]["dpo"]["variant"]
        d = self.cfg["distill"]
        mid = min((float(b) for b in d["biases"]), key=lambda b: abs(b - 0.5))
        beta = self.p.distill_hparams("dpo")[0]
        out = {
            "rm": ("BTL RM", [p.metrics(p.rm(variant, "none", 0.0, s), "train") for s in seeds],
                             self.cfg["dr"]["reward"]["train"]),
            "dpo": ("Std. DPO", [p.metrics(p.dpo(dpo_variant, "none", 0.0, s), "train") for s in seeds],
                              self.cfg["dr"]["dpo"]["train"]),
        }  # fmt: skip
        if "dpo" in d["methods"]:
            out["distill"] = (f"DPO (distillation, bias {fmt(mid)}, β={fmt(beta)})",
                                        self.distill_seed_files("dpo", mid, beta, "none", "train"),
                                        d["policy"]["train"])  # fmt: skip
        # an epoch budget (no max_steps) is the last logged step of the curve (budget None)
        return {g: {"label": label, "files": files, "budget": train.get("max_steps")}
                for g, (label, files, train) in out.items()}  # fmt: skip

    def learning_series(self) -> list[dict]:
        """The learning-curve figure: each family with its budget, then the most robust DR row of
        the reward-model and DPO grids beside it (same budget and learning rate)."""
        fams = self.learning_families()
        series = [fams["rm"]]
        p, seeds = self.paths, self.p.seeds()
        variant = self.cfg["report"]["rm_variant"]
        tv = [r for _, dv, r in self.p.rm_grid(variant, "tv") if dv == "tv"]
        if tv:
            series.append({"label": f"DR RM (TV, ρ={fmt(tv[-1])})", "budget": fams["rm"]["budget"],
                           "files": [p.metrics(p.rm(variant, "tv", tv[-1], s), "train") for s in seeds]})  # fmt: skip
        series.append(fams["dpo"])
        dpo = [(dv, r) for dv, r in self.p.dpo_grid() if dv != "none"]
        if dpo:
            dv, r = dpo[-1]
            v = self.cfg["dr"]["dpo"]["variant"]
            series.append({"label": f"DR DPO ({dv}, ρ={fmt(r)})", "budget": fams["dpo"]["budget"],
                           "files": [p.metrics(p.dpo(v, dv, r, s), "train") for s in seeds]})  # fmt: skip
        if "distill" in fams:
            series.append(fams["distill"])
        return series

    def gate_spec(self, gate: Gate) -> dict | None:
        """What ``gate`` reads in this config (its comparison, ``gate.measure``); None when the
        config lacks it."""
        p, m = self.paths, gate.measure
        if isinstance(m, BeatsReferences):
            variant = self.cfg["report"]["rm_variant"]
            return {"key": "metrics/accuracy", "files": self.seed_files(lambda s: p.rm(variant, "none", 0.0, s), "id"),
                    "above": [p.metrics(p.reference(variant, r), "id") for r in m.references]}  # fmt: skip
        if isinstance(m, SelectedAdvantage):
            if m.method not in self.cfg["distill"]["methods"]:
                return None
            mid = min((float(b) for b in self.cfg["distill"]["biases"]), key=lambda b: abs(b - 0.5))
            return {**self.selected(m.method, mid, "oracle_test"), "key": "metrics/advantage", "threshold": 0.0}
        if isinstance(m, PlainAdvantage):
            variant = self.cfg["dr"]["ppo"]["variant"]
            return {"key": "metrics/overall/advantage", "threshold": 0.0, "files": self.seed_files(
                lambda s: p.ppo(variant, "none", "none", 0.0, s), "oracle_id")}  # fmt: skip
        if isinstance(m, Converged):
            fam = self.learning_families().get(m.family)
            return None if fam is None else {"kind": "converged", "files": fam["files"], "budget": fam["budget"]}
        raise TypeError(f"gate {gate.name}: no plan for a {type(m).__name__} comparison")

    def gates(self) -> dict[str, dict]:
        """Sanity gates (core.report.paper_claims.GATES) of this config, by name."""
        return {g.name: spec for g in GATES.values() if (spec := self.gate_spec(g)) is not None}

    def claim_files(self) -> list[str]:
        """Every file the claims table reads (the claims rule's inputs)."""
        cells = [c for cs in self.claims().values() for c in cs]
        files = spec_files({"rows": cells}) + spec_files({"rows": list(self.gates().values())})
        files += [c[k] for c in cells for k in ("table", "file") if k in c]
        files += [f for c in cells for f, _ in c.get("degenerate", [])]
        files += [f for g in self.gates().values() for f in g.get("above", [])]
        return sorted(set(files))

    # ------------------------------------------------------------- the catalogue
    def tables(self) -> dict[str, dict]:
        """Every table spec by name (built once)."""
        if self._tables is None:
            self._tables = {**self.dr_tables(), **self.distill_tables(), **self.settings_tables()}
        return self._tables

    def table_files(self, name: str) -> list[str]:
        return spec_files(self.tables()[name])

    def figures(self) -> list[str]:
        """Figures whose data table this config has."""
        return [n for n, f in FIGURES.items() if "table" not in f or f["table"] in self.tables()]

    def figure(self, name: str) -> dict:
        fig = dict(FIGURES[name], name=name)
        if "table" in fig:
            fig["table"] = self.tables()[fig["table"]]
        if fig["kind"] == "learning_curves":
            fig["series"] = self.learning_series()
            fig["title"] = "Training and validation loss per seed (budgets: docs/claims.md)"
        if fig["kind"] == "curves":
            b1 = self.cfg["report"]["figureB1"]
            fig["series"] = [
                {"label": METHOD_LABELS[m], "files": self.distill_seed_files(m, b1["bias"], b1["beta"], g, "train")}
                for m, g in self.b1_series()
            ]
            fig["panels"] = list(B1_PANELS)
            fig["title"] = f"Likelihood collapse (bias {fmt(b1['bias'])}, beta {fmt(b1['beta'])})"
        return fig

    def figure_files(self, name: str) -> list[str]:
        fig = self.figure(name)
        if "table" in fig:
            return spec_files(fig["table"])
        return sorted({f for s in fig["series"] for f in s["files"]})

    def theory_names(self) -> list[str]:
        return list(self.cfg["theory"]["experiments"])

    def report_inputs(self) -> dict[str, list[str]]:
        tp, theory = self.paths, self.theory_names()
        return {
            "claims": [tp.claims("md"), tp.claims("csv")],
            "tables": [tp.table(n) for n in self.tables()],
            "csvs": [tp.table(n, "csv") for n in self.tables()],
            "figures": [tp.figure(n) for n in self.figures()],
            "theory": [tp.figure(f"theory_{n}") for n in theory]
            + [tp.table(f"theory_{n}", "csv") for n in theory]
            + [tp.metrics("theory", n) for n in theory],
        }

    def report_sections(self) -> list[dict]:
        """The document's outline: headings with tables / figures in paper order."""
        specs = self.tables()
        dr = [{"table": f"tables/{n}.md"} for n in DR_ORDER if n in specs]
        distill: list[dict] = []
        for fig, tabs in DISTILL_ORDER:
            if fig in self.figures():
                distill.append({"figure": f"figures/{fig}.png"})
            distill += [{"table": f"tables/{t}.md"} for t in tabs if t in specs]
        theory: list[dict] = []
        for n in self.theory_names():
            theory += [{"figure": f"figures/theory_{n}.png"},
                       {"summary": f"metrics/theory/{n}.json", "csv": f"tables/theory_{n}.csv"}]  # fmt: skip
        return [
            {"heading": "Claims: what this run says about each paper's claims", "items": [{"table": "claims.md"}]},
            {"heading": "Training budgets: loss curves", "items": [{"figure": "figures/learning_curves.png"}]},
            {"heading": "Distributionally robust RLHF (DR paper)", "items": dr},
            {"heading": "Reward-model distillation and pessimism (distillation paper)", "items": distill},
            {"heading": "Theory experiments", "items": theory},
        ]
