"""The DR paper's tables (Tables 1-15 and RewardBench 2) as typed specs of one config: which
models (rows, from the grids) on which benchmarks (columns) read which metrics files. Adding a
table is one :class:`Entry` in :meth:`DRTables.catalogue`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.eval.reference import REFERENCE_LABELS
from core.plan.cells import CellPlan
from core.plan.paths import fmt
from core.report.spec_types import Column, Row, SeedFiles, SettingsTable, Table
from core.vocab import DIVERGENCE_LABELS, REWARDBENCH2_SUBSETS, REWARDBENCH_SECTIONS

SECTION_NAMES = tuple(REWARDBENCH_SECTIONS)


@dataclass(frozen=True)
class Sourced:
    """A column and the benchmark (metrics leaf) its cells read."""

    source: str
    column: Column


@dataclass(frozen=True)
class SourceRow:
    """A row before its cells: per benchmark the per-seed metrics files of one model."""

    label: str
    files: Mapping[str, tuple[str, ...]]
    group: str | None = None


@dataclass(frozen=True)
class Entry:
    """One DR table: needs RewardBench?, title, caption, row header, columns, rows, and the variant
    whose reference rows (core.eval.reference) are appended under them (None: none)."""

    needs_rewardbench: bool
    title: str
    caption: str
    row_header: str
    columns: list[Sourced]
    rows: list[SourceRow]
    reference_variant: str | None


def make_table(name: str, title: str, caption: str, header: str, cols: list[Sourced], rows: list[SourceRow]) -> Table:
    """The table whose cells are each row's files of each column's benchmark."""
    out = [Row(r.label, {c.column.label: SeedFiles(r.files[c.source]) for c in cols}, r.group) for r in rows]
    return Table(name, title, caption, header, tuple(c.column for c in cols), tuple(out))


def _rho_label(prefix: str, rho: float) -> str:
    return f"{prefix} ρ = {fmt(rho)}"


def _scored(label: str, source: str, key: str) -> Sourced:
    return Sourced(source, Column(label, key, scale=100))


class DRTables(CellPlan):
    """The DR paper's tables of one config."""

    # ------------------------------------------------------------ row builders
    def rm_rows(self, variant: str, div: str, benches: list, group: str | None = None) -> list[SourceRow]:
        rows = []
        for v, d, rho in self.p.rm_grid(variant, div):
            label = "BTL RM" if d == "none" else _rho_label("DR RM", rho)
            files = {b: self.seed_files(lambda s, v=v, d=d, rho=rho: self.paths.rm(v, d, rho, s), b) for b in benches}
            rows.append(SourceRow(label, files, group))
        return rows

    def ppo_rows(self, benches: list, versions: list | None = None) -> list[SourceRow]:
        variant = self.cfg["dr"]["ppo"]["variant"]
        rows = []
        for version, d, rho in self.p.ppo_grid(versions):
            label = "BTL RM, Std. PPO" if version == "none" else _rho_label(f"DR PPO ({version})", rho)
            files = {
                b: self.seed_files(lambda s, ver=version, d=d, rho=rho: self.paths.ppo(variant, ver, d, rho, s), b)
                for b in benches
            }
            rows.append(SourceRow(label, files))
        return rows

    def dpo_rows(self, benches: list, group: str | None = None) -> list[SourceRow]:
        variant = self.cfg["dr"]["dpo"]["variant"]
        rows = []
        for d, rho in self.p.dpo_grid():
            label = "Std. DPO" if d == "none" else _rho_label("DR DPO", rho)
            files = {b: self.seed_files(lambda s, d=d, rho=rho: self.paths.dpo(variant, d, rho, s), b) for b in benches}
            rows.append(SourceRow(label, files, group))
        return rows

    def reference_rows(self, variant: str, benches: list, group: str | None = None) -> list[SourceRow]:
        """The reference rows (core.eval.reference) under a table of ``variant``'s benchmarks."""
        return [
            SourceRow(REFERENCE_LABELS[rule], {b: (self.paths.metrics(self.paths.reference(variant, rule), b),)
                                               for b in benches}, group)
            for rule in self.p.reference_rules()
        ]  # fmt: skip

    # --------------------------------------------------------- column builders
    def bench_columns(self, kind: str, benches: list) -> list[Sourced]:
        prefix = self.score_prefix(kind)
        return [_scored(self.p.bench_label(b), b, self.bench_key(prefix, b)) for b in benches]

    def section_columns(self, kind: str) -> list[Sourced]:
        p = self.score_prefix(kind)
        cols = [_scored(s, "rewardbench", f"{p}/scores/sections/{s}") for s in SECTION_NAMES]
        return cols + [_scored("Avg.", "rewardbench", f"{p}/scores/overall")]

    def rb_subsets(self, section: str) -> list[str]:
        """Official RewardBench subsets of a section that this config's benchmark covers."""
        spec = self.cfg["eval"]["benchmarks"].get("rewardbench", {})
        targets = set(spec.get("subset_map", {}).values())
        members = REWARDBENCH_SECTIONS[section]
        return [s for s in members if s in targets] if targets else list(members)

    def subset_columns(self, kind: str, sections: tuple = SECTION_NAMES, with_sections: bool = True) -> list[Sourced]:
        p = self.score_prefix(kind)
        cols = []
        for s in sections:
            cols += [_scored(sub, "rewardbench", f"{p}/scores/subsets/{sub}") for sub in self.rb_subsets(s)]
            if with_sections:
                cols.append(_scored(f"{s} (section)", "rewardbench", f"{p}/scores/sections/{s}"))
        if with_sections:
            cols.append(_scored("Avg.", "rewardbench", f"{p}/scores/overall"))
        return cols

    # ------------------------------------------------------------------ tables
    def catalogue(self) -> dict[str, Entry]:
        """The DR paper's tables of RewardBench, HHH and MT-Bench scores (Tables 1-6, 8-12, 14, 15)."""
        rep, note, rb = self.cfg["report"], self.note, ["rewardbench"]
        rmv, ood, ppo_v = rep["rm_variant"], self.p.dr_benchmarks_ood(), [rep["ppo_version"]]
        ppo_var, dpo_var = self.cfg["dr"]["ppo"]["variant"], self.cfg["dr"]["dpo"]["variant"]
        rm_reasoning = self.subset_columns("rm", ("Reasoning",), False)
        ppo_reasoning = self.subset_columns("ppo", ("Reasoning",), False)
        cat = {
            "table1": Entry(True, "Table 1: reward models on RewardBench (BTL vs DR, TV)",
                            f"Pairwise accuracy (%) by RewardBench section, trained on variant '{rmv}'. {note}",
                            "Reward Model", self.section_columns("rm"), self.rm_rows(rmv, "tv", rb), rmv),
            "table2": Entry(True, "Table 2: reward models on RewardBench's reasoning subsets",
                            f"Accuracy (%) per reasoning subset, variant '{rmv}', TV. {note}",
                            "Reward Model", rm_reasoning, self.rm_rows(rmv, "tv", rb), rmv),
            "table3": Entry(False, "Table 3: PPO and DR-PPO (vA, vB), in- and out-of-distribution",
                            f"Policy accuracy (%) with {rep['ppo_mode']} scoring; reward model and PPO share rho. "
                            f"{note}", "Model", self.bench_columns("ppo", ood), self.ppo_rows(ood), ppo_var),
            "table4": Entry(True, "Table 4: DR-PPO on RewardBench sections",
                            f"Policy accuracy (%) by section ({rep['ppo_mode']}). {note}",
                            "Reward Model", self.section_columns("ppo"), self.ppo_rows(rb, ppo_v), ppo_var),
            "table5": Entry(True, "Table 5: DR-PPO on RewardBench's reasoning subsets",
                            f"Policy accuracy (%) per reasoning subset. {note}",
                            "Reward Model", ppo_reasoning, self.ppo_rows(rb, ppo_v), ppo_var),
            "table6": Entry(False, "Table 6: DPO vs DR-DPO, in- and out-of-distribution",
                            f"Policy accuracy (%) with {rep['dpo_mode']} scoring. {note}",
                            "Model", self.bench_columns("dpo", ood), self.dpo_rows(ood), dpo_var),
            "table8": Entry(False, "Table 8: reward models by dataset variant and divergence",
                            f"Pairwise accuracy (%); groups are training-set variants and divergences. {note}",
                            "Reward Model", self.bench_columns("rm", ood), self.table8_rows(ood), None),
        }  # fmt: skip
        for name, (variant, div) in rep["subset_tables"].items():
            cat[name] = Entry(True, f"{name.replace('table', 'Table ')}: reward models per RewardBench subset "
                              f"(variant '{variant}', {DIVERGENCE_LABELS[div]})",
                              f"Accuracy (%) per subset, section and average. {note}",
                              "Reward Model", self.subset_columns("rm"), self.rm_rows(variant, div, rb),
                              variant)  # fmt: skip
        cat["table14"] = Entry(True, "Table 14: PPO per RewardBench subset",
                               f"Policy accuracy (%) per subset ({rep['ppo_mode']}). {note}",
                               "Model", self.subset_columns("ppo"), self.ppo_rows(rb, ppo_v), ppo_var)  # fmt: skip
        cat["table15"] = Entry(True, "Table 15: DPO per RewardBench subset",
                               f"Policy accuracy (%) per subset ({rep['dpo_mode']}). {note}",
                               "Model", self.subset_columns("dpo"), self.dpo_rows(rb), dpo_var)  # fmt: skip
        return cat

    def table8_rows(self, benches: list) -> list[SourceRow]:
        """Every reward model of every training-set variant and divergence, each variant's reference rows under it."""
        rows = []
        for variant, grids in self.cfg["dr"]["reward"]["grids"].items():
            for div in grids:
                rows += self.rm_rows(variant, div, benches, group=f"{variant}; {DIVERGENCE_LABELS[div]}")
            rows += self.reference_rows(variant, benches, group=f"{variant}; reference")
        return rows

    def tables(self) -> dict[str, Table]:
        """The DR paper's table specs this config has (RewardBench tables need that benchmark)."""
        has_rb = "rewardbench" in self.cfg["eval"]["benchmarks"]
        specs: dict[str, Table] = {}
        for name, e in self.catalogue().items():
            if e.needs_rewardbench and not has_rb:
                continue
            rows = e.rows
            if e.reference_variant is not None:
                rows = rows + self.reference_rows(e.reference_variant, list(dict.fromkeys(c.source for c in e.columns)))
            specs[name] = make_table(name, e.title, e.caption, e.row_header, e.columns, rows)
        specs["table3_oracle"] = self.ppo_oracle_table()
        if "rewardbench2" in self.cfg["eval"]["benchmarks"]:
            specs["table_rb2"] = self.rewardbench2_table()
        return specs

    def rewardbench2_table(self) -> Table:
        """RewardBench 2 (core.eval.rewardbench2): best-of-4 accuracy per subset, Ties' weighted score
        and their mean, for the DR reward models (BTL vs DR, TV, ``report.rm_variant``) and the
        DPO-family policies of the DR experiments (DPO vs DR-DPO, ``report.dpo_mode``)."""
        rep, bench = self.cfg["report"], "rewardbench2"
        keys = [*(f"scores/subsets/{s}" for s in REWARDBENCH2_SUBSETS), "scores/overall"]
        labels = [*REWARDBENCH2_SUBSETS, "Avg."]

        def columns(kind: str) -> list[Sourced]:
            prefix = self.score_prefix(kind)
            return [_scored(lab, bench, f"{prefix}/{key}") for lab, key in zip(labels, keys, strict=True)]

        title = "RewardBench 2: DR reward models and DPO policies"
        caption = (
            "Best-of-4 accuracy (%) per subset (a tie at the top shares the credit), Ties' weighted score "
            f"and their mean, as the official code (allenai/reward-bench, scripts/run_v2.py). {self.note}"
        )
        rm = make_table(
            "table_rb2",
            title,
            caption,
            "Model",
            columns("rm"),
            self.rm_rows(rep["rm_variant"], "tv", [bench], group=f"reward models ({rep['rm_variant']}, TV)"),
        )
        dpo_cols = columns("dpo")
        policies = [
            Row(r.label, {c.column.label: SeedFiles(r.files[bench], key=c.column.key) for c in dpo_cols}, r.group)
            for r in self.dpo_rows([bench], group=f"DPO policies ({rep['dpo_mode']})")
        ]
        refs = make_table(
            "table_rb2",
            title,
            caption,
            "Model",
            columns("rm"),
            self.reference_rows(rep["rm_variant"], [bench], group=f"{rep['rm_variant']}; reference"),
        )
        return Table(rm.name, title, caption, "Model", rm.columns, (*rm.rows, *policies, *refs.rows))  # fmt: skip

    def oracle_domains(self) -> list[str]:
        """Domains whose oracle reward the PPO table shows one by one (the synthetic world's; a
        real config's prompts carry no domain the config knows in advance: overall only)."""
        if self.cfg["data"]["kind"] != "synthetic":
            return []
        from core.data.synthetic import SUBSETS  # the synthetic world, imported for its configs only

        return list(SUBSETS)

    def ppo_oracle_table(self) -> Table:
        """DR-PPO judged by the oracle reward of its samples (DR paper §5.2's policies; the world's
        oracle is the judge): mean over domains in and out of distribution, the advantage over
        pi_ref's samples on the same prompts, and each domain out of distribution; pi_ref's own
        row from the same files."""
        cols = []
        for split, name in (("id", "ID"), ("ood", "OOD")):
            cols += [
                Sourced(f"oracle_{split}", Column(f"{name} reward", "metrics/overall/mean", 1, 3)),
                Sourced(f"oracle_{split}", Column(f"{name} adv. over π_ref", "metrics/overall/advantage", 1, 3)),
            ]
        cols += [Sourced("oracle_ood", Column(f"OOD {d}", f"metrics/domains/{d}/mean", 1, 3))
                 for d in self.oracle_domains()]  # fmt: skip
        rows = self.ppo_rows(["oracle_id", "oracle_ood"])
        spec = make_table("table3_oracle", "Table 3b: PPO and DR-PPO judged by the oracle reward of their samples",
                          "Mean oracle reward r*(x, y) of one sample per prompt, equal weight over domains, "
                          f"{self.cfg['eval']['oracle_prompts_per_domain']} prompts per domain; ID: the variant's "
                          "test prompts, OOD: the out-of-distribution benchmark's prompts. Advantage: paired by "
                          f"prompt against π_ref's samples. {self.note}", "Model", cols, rows)  # fmt: skip
        base = rows[0].files
        ref_cells = {c.column.label: SeedFiles(base[c.source], c.column.key.replace("metrics/", "metrics/reference/"))
                     for c in cols if "advantage" not in c.column.key}  # fmt: skip
        return Table(spec.name, spec.title, spec.caption, spec.row_header, spec.columns,
                     (*spec.rows, Row("SFT (π_ref)", ref_cells, "reference")))  # fmt: skip

    def settings_tables(self) -> dict[str, SettingsTable]:
        """Tables 7 and 13: the training settings, read from the config (values as text)."""

        def row(name: str, *vals: object) -> tuple:
            return (name, *(None if v is None else fmt(v) if isinstance(v, float) else str(v) for v in vals))

        rm, ppo, dpo = self.cfg["dr"]["reward"], self.cfg["dr"]["ppo"], self.cfg["dr"]["dpo"]
        keys = sorted(set(rm["train"]) | set(ppo["train"]) | set(dpo["train"]))
        t7 = [row("Base model", self.p.base_model("reward")), row("Training pairs", rm["n_train"]),
              row("Average iterates", rm["average_iterates"])]  # fmt: skip
        t7 += [row(k, rm["train"][k]) for k in sorted(rm["train"])]
        lora = self.cfg["models"]["reward"].get("lora")
        if lora:
            t7 += [row(f"LoRA {k}", v) for k, v in sorted(lora.items())]
        ref = self.p.reference_policy("dr")
        t13 = [row("Base model", ref, ref), row("Training pairs", ppo["n_train"], dpo["n_train"]),
               row("KL coefficient beta", ppo["train"].get("kl_coef"), dpo["beta"])]  # fmt: skip
        t13 += [row(k, ppo["train"].get(k), dpo["train"].get(k)) for k in keys if k != "kl_coef"]
        read = "Read from the config."
        return {
            "table7": SettingsTable("table7", "Table 7: reward-model training settings", read, ("Setting", "Value"),
                                    tuple(t7)),
            "table13": SettingsTable("table13", "Table 13: PPO and DPO training settings", read,
                                     ("Setting", "PPO", "DPO"), tuple(t13)),
        }  # fmt: skip
