"""The Snakemake workflow end to end: config validation, the paper DAG, the smoke DAG.

* a bad config value or key fails before any job starts, naming the key;
* ``snakemake -n --configfile configs/paper.yaml`` resolves the papers' full DAG offline;
* tests/smoke.yaml runs the whole DAG with ``--cores 2``: every table and figure exists, table
  numbers equal the metrics files', every job's MLflow run is there (parallel jobs, one SQLite
  file), a second run does nothing, one table asks only for what it needs, and changing one
  config value reruns only what depends on it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import packaged_as_hub

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
SNAKEMAKE = str(VENV_BIN / "snakemake") if (VENV_BIN / "snakemake").exists() else "snakemake"
SMOKE = REPO / "tests" / "smoke.yaml"
RES = "results/smoke"  # every output of a config lives under results/<its name>/

TABLES = [f"table{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)] + [
    "figure2",
    "figure2_wald",
    "figureB1",
    "figureB3",
    "figureB4",
    "figureB5",
]
FIGURES = ["figure2", "figureB1", "figureB3", "figureB4", "figureB5"]
UNLOGGED_RULES = {"table", "figure", "claims", "all"}  # cheap views of metrics files; the report run logs them


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def smoke_config() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ------------------------------------------------------------------------- validation
def _bad(mutate):
    cfg = smoke_config()
    mutate(cfg)
    return cfg


BAD_CONFIGS = {
    "negative rho": (
        lambda c: c["dr"]["reward"]["grids"]["no-hh-rlhf"].__setitem__("tv", [-0.1]),
        "dr.reward.grids.no-hh-rlhf.tv[0]",
    ),
    "unknown divergence": (lambda c: c["dr"]["ppo"].__setitem__("divergence", "wasserstein"), "dr.ppo.divergence"),
    "unknown method": (lambda c: c["distill"].__setitem__("methods", ["dpo", "kto"]), "distill.methods[1]"),
    "missing model path": (
        lambda c: c["models"].__setitem__("policy", {"source": "local", "path": "/no/such/model"}),
        "models.policy.path",
    ),
    "model path key absent": (lambda c: c["models"].__setitem__("reward", {"source": "hub"}), "models.reward"),
    "misspelt key": (lambda c: c["dr"]["dpo"].__setitem__("betta", 0.1), "dr.dpo"),
    "unknown variant": (lambda c: c["dr"]["ppo"].__setitem__("variant", "no-such-variant"), "dr.ppo.variant"),
    "infeasible ensemble": (lambda c: c["distill"].__setitem__("ensemble_n", 79), "distill.ensemble_n"),
    "eval in two processes": (lambda c: c["resources"]["eval"].__setitem__("nproc", 2), "resources.eval.nproc"),
    "more processes than GPUs": (lambda c: c["resources"]["train"].update(nproc=4, gpu=2), "resources.train.nproc"),
}


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    def run(item):
        name, (mutate, key) = item
        work = tmp_path / name.replace(" ", "_")
        work.mkdir()
        cfg = write_config(work / "bad.yaml", _bad(mutate))
        return name, key, work, snakemake(work, "-n", "--configfile", str(cfg), timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, BAD_CONFIGS.items()))
    for name, key, work, proc in results:
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"{name}: snakemake accepted the config"
        assert f"config key {key}" in out, f"{name}: message does not name {key!r}:\n{out[-2000:]}"
        assert "Job stats" not in out and not (work / "results").exists(), f"{name}: jobs were scheduled"


def test_a_key_given_twice_in_the_config_file_fails_before_any_job(tmp_path):
    """Snakemake reads config files with plain YAML, which keeps the last of two equal keys."""
    text = SMOKE.read_text()
    assert "\nseed: 0\n" in text
    cfg = tmp_path / "twice.yaml"
    cfg.write_text(text.replace("\nseed: 0\n", "\nseed: 0\nseed: 1\n", 1))
    line = text[: text.index("\nseed: 0\n")].count("\n") + 3  # the second 'seed'
    proc = snakemake(tmp_path, "-n", "--configfile", str(cfg), timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, "snakemake accepted a key given twice"
    # the file as given, relative to the working directory (-d) when it lies under it
    assert f"config file twice.yaml line {line}: duplicated key 'seed'" in out, out[-2000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def _make_dry_run(tmp_path, target: str) -> dict[str, int]:
    """The job stats of the snakemake command `make <target>` runs (as make prints it), dry."""
    proc = subprocess.run(
        ["make", "-n", target], capture_output=True, text=True, cwd=REPO, timeout=60, env=dict(os.environ, MAKEFLAGS="")
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "/snakemake " in x)
    command = shlex.split(line.split("snakemake ", 1)[1])
    dry = snakemake(tmp_path, "-n", *command, timeout=180)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    return job_stats(dry.stdout)


def test_make_demo_runs_the_default_dag_with_all_as_target(tmp_path):
    """`make demo`'s snakemake command builds the default DAG up to `all`; a target placed after
    --configfile would be read as a second config file. It trains only the distillation policies
    a claim or gate reads (report.rows: claims); `make all-tables` trains the whole grid."""
    stats = _make_dry_run(tmp_path, "demo")
    pipe = pipeline_of(REPO / "config.yaml")
    specs = pipe.specs
    assert stats["all"] == 1 and stats["report"] == 1 and stats["claims"] == 1, stats
    assert stats["table"] == len(specs.tables()) and stats["figure"] == len(specs.figures()), stats
    claim_jobs = {os.path.dirname(r) for r in specs.claim_runs() if "/metrics/distill/" in r}  # seed folders -> runs
    assert stats["train_distill_policy"] == len(claim_jobs) < len(pipe.distill_runs())
    full = _make_dry_run(tmp_path, "all-tables")
    assert full["train_distill_policy"] == len(pipe.distill_runs()) and full["table"] == stats["table"]


def test_shipped_configs_validate_against_the_schema(tmp_path):
    """config.yaml (the default) and configs/paper.yaml pass validation; paper's DAG resolves."""
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_resolves_its_dag(tmp_path, config):
    """Each configs/*.yaml passes the schema and its DAG resolves offline (small-real-lm.yaml's
    alpaca-eval format was once missing from the schema's list). Local data paths are relative to
    the checkout, where the workflow runs: made absolute here for a run in another folder; packaged
    models not installed are named by their hub ids (conftest.packaged_as_hub)."""
    cfg = packaged_as_hub(yaml.safe_load((REPO / "configs" / config).read_text()))
    for spec in (cfg.get("data", {}).get("sources") or {}).values():
        local = REPO / spec["source"]
        if spec["source"].startswith(".") and not local.exists():
            pytest.skip(f"{config}: its data {spec['source']} is not beside this checkout")
        spec["source"] = str(local) if spec["source"].startswith(".") else spec["source"]
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(write_config(tmp_path / config, cfg)))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_paper_config_resolves_its_full_dag(tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs" / "paper.yaml"), timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    stats = job_stats(proc.stdout)
    # 7 biases x (DPO, IPO, d-DPO, p-DPO, dp-DPO: 7 betas each; e-DPO: 7 betas x 2 gamma modes)
    assert stats["train_distill_policy"] == 7 * (5 * 7 + 7 * 2)
    # BTL + rho grids: unfiltered 6 TV; no-hh-rlhf 7 TV + 6 chi2; no-chatbot-arena 7 TV
    assert stats["train_rm_dr"] == (1 + 6) + (1 + 7 + 6) + (1 + 7)
    assert stats["train_ppo"] == 1 + 2 * 6 and stats["train_dpo_dr"] == 1 + 6
    assert stats["load_dataset"] == 6 and stats["train_oracle_rm"] == 1
    specs = pipeline_of(REPO / "configs" / "paper.yaml").specs
    # + Table 3b (PPO by the oracle) and RewardBench 2's table
    assert stats["table"] == len(specs.tables()) == len(TABLES) + 2 and "table_rb2" in specs.tables()
    assert stats["figure"] == len(specs.figures()) == len(FIGURES) + 1 and stats["theory"] == 7  # + learning curves


def pipeline_of(config: Path):
    """The Pipeline (grids, specs) of a shipped config file."""
    from core.plan import Pipeline

    return Pipeline(yaml.safe_load(config.read_text()))


def job_stats(stdout: str) -> dict[str, int]:
    block = stdout.split("Job stats:", 1)[1]
    stats = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        stats[parts[0]] = int(parts[1])
    return stats


# ------------------------------------------------------------------------- smoke DAG
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke DAG run once with two parallel jobs; returns (workdir, snakemake output)."""
    work = tmp_path_factory.mktemp("smoke")
    proc = snakemake(work, "--cores", "2", "--configfile", str(SMOKE), timeout=900)
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-1500:]}"
            for p in (work / RES / "logs").rglob("*.log")
            if "Error" in p.read_text() or "Traceback" in p.read_text()
        )
        pytest.fail(f"smoke DAG failed:\n{proc.stderr[-4000:]}\n{logs}")
    return work, proc.stdout + proc.stderr


def metric(path: Path, *keys: str) -> float:
    node = json.loads(path.read_text())
    for k in keys:
        node = node[k]
    return float(node)


def test_every_table_and_figure_exists(smoke):
    work, _ = smoke
    res = work / RES
    for name in TABLES:
        assert (res / "tables" / f"{name}.csv").stat().st_size > 0, name
        assert (res / "tables" / f"{name}.md").read_text().startswith("### "), name
    for name in FIGURES + [f"theory_{e}" for e in smoke_config()["theory"]["experiments"]]:
        png = (res / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000, name
    report = (res / "report.md").read_text()
    for name in TABLES + FIGURES:
        assert (f"tables/{name}.md" in report) or (f"figures/{name}.png" in report), name
    assert "<table>" in (res / "report.html").read_text()
    # the claims come first: one row per claim, each with a computed verdict
    from core.report.claims import VERDICTS
    from core.report.paper_claims import CLAIMS

    claims = pd.read_csv(res / "claims.csv", keep_default_na=False)  # "n/a" is a verdict, not a missing value
    assert {c.id for c in CLAIMS} <= {str(x).split(":")[0] for x in claims["claim"]}
    assert set(claims["verdict"]) <= set(VERDICTS) and (claims["verdict"] != "n/a").any()
    assert report.index("Claims of both papers") < report.index("Table 1:")
    # theory sections are summaries linking their per-replicate CSVs; every table has reference rows
    assert "Per-replicate table: [`tables/theory_" in report and "*Source: `tables/theory_" not in report
    t1 = pd.read_csv(res / "tables" / "table1.csv")
    assert {"Reference: longer response preferred", "Reference: random (expected)"} <= set(t1["Reward Model"])
    assert _row(t1, "Reference: random (expected)")["Avg."] == pytest.approx(50.0)


def _row(frame: pd.DataFrame, label: str) -> pd.Series:
    header = [c for c in frame.columns if c not in ("group",)][0]
    rows = frame[frame[header] == label]
    assert len(rows) == 1, f"row {label!r} not unique in {list(frame[header])}"
    return rows.iloc[0]


def test_table_numbers_equal_the_metrics_files(smoke):
    work, _ = smoke
    res = work / RES
    m = res / "metrics" / "dr"
    rm_btl, rm_tv = m / "rm/no-hh-rlhf/none/rho0/seed0", m / "rm/no-hh-rlhf/tv/rho0.5/seed0"
    t1 = pd.read_csv(res / "tables" / "table1.csv")
    for label, folder in (("BTL RM", rm_btl), ("DR RM ρ = 0.5", rm_tv)):
        row = _row(t1, label)
        f = folder / "rewardbench.json"
        for section in ("Chat", "Chat Hard", "Safety", "Reasoning"):
            assert row[section] == pytest.approx(100 * metric(f, "metrics", "scores", "sections", section), abs=1e-9)
        assert row["Avg."] == pytest.approx(100 * metric(f, "metrics", "scores", "overall"), abs=1e-9)
        run_id = json.loads(f.read_text())["extra"]["run_id"]
        assert run_id and run_id in row["run_ids"] and str(row["n_seeds"]) == "1"
        assert math.isnan(row["Chat ci_low"])  # one seed: no interval
    t2 = pd.read_csv(res / "tables" / "table2.csv")
    assert _row(t2, "BTL RM")["math-prm"] == pytest.approx(
        100 * metric(rm_btl / "rewardbench.json", "metrics", "scores", "subsets", "math-prm")
    )
    t3 = pd.read_csv(res / "tables" / "table3.csv")
    ppo = m / "ppo/no-hh-rlhf/vA/tv/rho0.5/seed0"
    assert _row(t3, "DR PPO (vA) ρ = 0.5")["In-distribution (synthetic)"] == pytest.approx(
        100 * metric(ppo / "id.json", "metrics", "likelihood", "accuracy")
    )
    t6 = pd.read_csv(res / "tables" / "table6.csv")
    assert _row(t6, "Std. DPO")["HHH (synthetic, OOD)"] == pytest.approx(
        100 * metric(m / "dpo/no-hh-rlhf/none/rho0/seed0/hhh.json", "metrics", "implicit", "scores", "overall")
    )
    t8 = pd.read_csv(res / "tables" / "table8.csv")
    chi = t8[(t8["group"] == "no-hh-rlhf; χ² dist.") & (t8["Reward Model"] == "DR RM ρ = 0.5")].iloc[0]
    assert chi["In-distribution (synthetic)"] == pytest.approx(
        100 * metric(m / "rm/no-hh-rlhf/chi2/rho0.5/seed0/id.json", "metrics", "accuracy")
    )
    # distillation: the only beta is selected; the interval is the file's bootstrap interval
    f2 = pd.read_csv(res / "tables" / "figure2.csv")
    ed = res / "metrics/distill/edpo/bias0.5/beta0.5/linear/seed0/oracle_test.json"
    row = _row(f2, "e-DPO")
    assert row["bias = 0.5"] == pytest.approx(metric(ed, "metrics", "advantage"), abs=1e-12)
    assert row["bias = 0.5 ci_low"] == pytest.approx(metric(ed, "metrics", "ci_low"), abs=1e-12)
    assert row["bias = 0.5 selected"] == "β=0.5"
    b3 = pd.read_csv(res / "tables" / "figureB3.csv")
    train = res / "metrics/distill/edpo/bias0.5/beta0.5/linear/seed0/train.json"
    fractions = json.loads(train.read_text())["metrics"]["member_fraction"]
    assert _row(b3, "bias = 0.5")["b = 0.25"] == pytest.approx(100 * fractions["ens0.25"])
    assert sum(fractions.values()) == pytest.approx(1.0)
    md = (res / "tables" / "table1.md").read_text()
    assert f"{_row(t1, 'BTL RM')['Chat']:.1f}" in md


def _executed(output: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rule in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def test_parallel_jobs_keep_every_mlflow_run(smoke):
    from mlflow.tracking import MlflowClient

    work, output = smoke
    executed = _executed(output)
    assert executed, "no jobs were reported as finished"
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    by_rule: dict[str, int] = {}
    for r in runs:
        assert r.info.status == "FINISHED", r.info.run_name
        by_rule[r.data.tags["rule"]] = by_rule.get(r.data.tags["rule"], 0) + 1
    assert by_rule == {k: v for k, v in executed.items() if k not in UNLOGGED_RULES}
    # the runs overlapped in time (two jobs at once), and each carries its config slice + commit
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), "no two jobs ran in parallel"
    rm = [r for r in runs if r.data.tags["rule"] == "train_rm_dr"][0]
    assert {"git_commit", "rule", "config.dr.divergence", "wildcards.rho"} <= set(rm.data.params)
    assert len(client.get_metric_history(rm.info.run_id, "loss")) >= 2  # a step curve, not one number
    ids = {r.info.run_id for r in runs}
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert not os.path.isabs(exp.artifact_location)  # a relative store keeps relative artifacts
    for r in runs:  # names lead with the wildcards; every evaluation links the run that trained its model
        assert r.data.tags["job"].startswith(r.data.tags["rule"]) and "[" not in r.info.run_name
        if r.data.tags["rule"] in ("eval_rm_dr", "eval_dpo_dr", "eval_ppo"):
            train = client.get_run(r.data.tags["train_run_id"])
            assert train.data.tags[f"evaluation.{r.data.tags['rule']}"] == r.info.run_id
            assert train.data.tags["rule"] == r.data.tags["rule"].replace("eval_", "train_")
            assert train.data.tags.get("wildcard.seed") == r.data.tags.get("wildcard.seed")
    for f in (work / RES / "metrics").rglob("*.json"):
        rid = json.loads(f.read_text()).get("extra", {}).get("run_id")
        assert rid in ids, f"{f} names run {rid!r}, which MLflow does not have"


def test_second_run_does_nothing(smoke):
    work, _ = smoke
    proc = snakemake(work, "--cores", "2", "--configfile", str(SMOKE), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert not _executed(proc.stdout + proc.stderr)


def test_one_table_requests_only_what_it_needs(smoke, tmp_path):
    proc = snakemake(tmp_path, f"{RES}/tables/table1.md", "-n", "--configfile", str(SMOKE))
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = job_stats(proc.stdout)
    assert stats["train_rm_dr"] == 2 and stats["eval_rm_dr"] == 2 and stats["table"] == 1
    assert not {"sft", "train_ppo", "train_dpo_dr", "train_distill_policy", "theory", "report"} & set(stats)


def test_changing_one_value_reruns_only_its_dependents(smoke, tmp_path):
    work, _ = smoke
    cfg = smoke_config()
    cfg["dr"]["dpo"]["beta"] = 0.2
    path = write_config(tmp_path / "changed.yaml", cfg)
    proc = snakemake(work, "-n", "--configfile", str(path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = job_stats(proc.stdout)
    assert stats.pop("train_dpo_dr") == 2 and stats.pop("eval_dpo_dr") == 2
    # tables reading DPO metrics (6, 15) and the settings table 13 (it shows beta), the
    # learning-curve figure (DPO's validation curve), the claims (DR-DPO vs DPO), then the report
    assert stats.pop("table") == 3 and stats.pop("figure") == 1
    assert stats.pop("claims") == 1 and stats.pop("report") == 1
    assert stats.pop("all") == 1 and stats.pop("total") == 11 and not stats, stats


def test_configs_keep_their_outputs_apart(smoke):
    """Another config in the same working directory plans its own DAG from scratch under
    results/<its name>/ and never touches (or reuses) the smoke config's files."""
    work, _ = smoke
    before = {p: p.stat().st_mtime_ns for p in (work / RES).rglob("*") if p.is_file()}
    proc = snakemake(work, "-n", "results/embedded-default/tables/table1.md", "--configfile", str(REPO / "config.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = job_stats(proc.stdout)
    assert stats["world"] == 1 and stats["tokenizer"] == 1 and stats["train_rm_dr"] >= 2
    assert RES not in proc.stdout and "results/embedded-default/" in proc.stdout
    assert before == {p: p.stat().st_mtime_ns for p in (work / RES).rglob("*") if p.is_file()}
