"""core.plan: the path scheme, the grids, the specs and the rule helpers, tested without
Snakemake; and the workflow layer's shape (rules hold rules, thin scripts)."""

from __future__ import annotations

import ast
import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import core.jobs.data as data_jobs
from core.plan import Pipeline
from core.plan.config import ConfigError
from core.plan.paths import WILDCARD_CONSTRAINTS, Paths, fmt
from core.report.spec_types import FlattensBefore, Table

REPO = Path(__file__).resolve().parents[1]


def smoke() -> dict:
    return yaml.safe_load((REPO / "tests" / "smoke.yaml").read_text())


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(smoke())


def test_fmt_writes_canonical_numbers_and_keeps_placeholders():
    assert [fmt(x) for x in (0.1, 1.0, 1, 1e-4, 0.25, 2.5e-7)] == ["0.1", "1", "1", "0.0001", "0.25", "0.00000025"]
    assert fmt("{rho}") == "{rho}" and fmt("0.50") == "0.50"


def test_one_function_builds_a_path_for_rules_and_specs():
    paths = Paths("results/x")
    pattern = paths.metrics(paths.rm("{variant}", "{div}", "{rho}", "{seed}"), "id")
    concrete = paths.metrics(paths.rm("unfiltered", "tv", 0.5, 3), "id")
    assert pattern.format(variant="unfiltered", div="tv", rho="0.5", seed=3) == concrete
    assert concrete == "results/x/metrics/dr/rm/unfiltered/tv/rho0.5/seed3/id.json"
    assert (
        paths.model(paths.distill("edpo", 0.5, 1.0, "linear", 0))
        == "results/x/models/distill/edpo/bias0.5/beta1/linear/seed0"
    )


def test_outputs_live_under_the_config_name(pipe):
    assert pipe.root == "results/smoke"
    other = smoke()
    other["name"] = "other-world"
    assert Pipeline(other).paths.report() == "results/other-world/report.md"


def test_every_file_a_spec_names_matches_the_path_scheme(pipe):
    """Each metrics file a table reads is one the rules can write: its wildcards satisfy the
    constraints (so a spec can never ask for a file no rule makes)."""
    c = WILDCARD_CONSTRAINTS
    patterns = [
        rf"dr/(rm|rm_ppo)/{c['variant']}/({c['div']})/rho({c['rho']})/seed\d+/({c['bench']})",
        rf"dr/ppo/{c['variant']}/({c['version']})/({c['div']})/rho({c['rho']})/seed\d+/({c['bench']}|oracle_id|oracle_ood)",
        rf"dr/dpo/{c['variant']}/({c['div']})/rho({c['rho']})/seed\d+/({c['bench']})",
        rf"distill/({c['method']})/bias({c['bias']})/beta({c['beta']})/({c['gamma']})/seed\d+/(train|oracle_val|oracle_test)",
        rf"reference/{c['variant']}/(longer|random|oracle)/({c['bench']})",
    ]
    scheme = re.compile(rf"^results/smoke/metrics/({'|'.join(patterns)})\.json$")
    files = [f for name in pipe.specs.tables() for f in pipe.specs.table_files(name)]
    assert files
    bad = [f for f in files if not scheme.match(f)]
    assert not bad, bad[:5]


def test_grids_of_the_smoke_config(pipe):
    assert pipe.rm_grid("no-hh-rlhf", "tv") == [("no-hh-rlhf", "none", 0.0), ("no-hh-rlhf", "tv", 0.5)]
    assert pipe.rm_key("v", "tv", 0.0) == ("v", "none", 0.0) == pipe.rm_key("v", "none", 0.3)
    assert pipe.ppo_grid() == [("none", "none", 0.0)] + [(v, "tv", 0.5) for v in pipe.cfg["dr"]["ppo"]["versions"]]
    assert pipe.ppo_grid(["vA"]) == [("none", "none", 0.0), ("vA", "tv", 0.5)]
    assert pipe.gamma_modes("dpo") == ["none"] and pipe.gamma_modes("edpo") == ["linear", "constant"]
    runs = pipe.distill_runs()
    assert len(runs) == len(set(runs)) and ("edpo", 0.5, 0.5, "constant") in runs


def test_table1_reads_exactly_its_reward_models(pipe):
    files = pipe.specs.table_files("table1")
    models = [f"results/smoke/metrics/dr/rm/no-hh-rlhf/{d}/rho{r}/seed0/rewardbench.json"
              for d, r in (("none", "0"), ("tv", "0.5"))]  # fmt: skip
    refs = [f"results/smoke/metrics/reference/no-hh-rlhf/{r}/rewardbench.json" for r in ("longer", "oracle", "random")]
    assert files == sorted(models + refs)
    assert pipe.specs.table_files("table7") == []  # settings tables read the config only


def test_base_models_are_inputs_when_built_and_params_when_named():
    cfg = smoke()
    p = Pipeline(copy.deepcopy(cfg))
    assert p.base_model_input("policy") == ["results/smoke/models/base/policy"]
    assert p.base_model_ref("policy") is None
    cfg["models"]["reward"] = {"source": "hub", "path": "owner/reward-model"}
    cfg["models"]["ppo_reward"] = {"source": "build", "arch": cfg["models"]["policy"]["arch"]}
    p = Pipeline(cfg)
    assert p.base_model_input("reward") == [] and p.base_model_ref("reward") == "owner/reward-model"


def test_reward_models_from_sft_and_sft_from_the_pretrained_backbone():
    cfg = smoke()
    cfg["models"]["reward"] = {"source": "sft"}
    cfg["pretrain"] = {"train": {"max_steps": 2}}
    p = Pipeline(cfg)
    assert p.base_model_input("reward") == ["results/smoke/models/sft"] and p.base_model_ref("reward") is None
    assert p.base_model("reward") == "results/smoke/models/sft"
    assert p.sft_base_input() == ["results/smoke/models/pretrained"] and p.sft_base_ref() is None
    assert "pretrain_corpus" in p.raw_outputs()
    without = Pipeline(smoke())
    assert without.sft_base_input() == ["results/smoke/models/base/policy"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c["models"].__setitem__("policy", {"source": "sft"}), "config key models.policy.source"),
        (
            lambda c: (c.__setitem__("pretrain", {"train": {"max_steps": 2}}),
                       c["models"].__setitem__("policy", {"source": "hub", "path": "owner/lm"}),
                       c["models"].__setitem__("reward", {"source": "hub", "path": "owner/lm"})),
            "config key pretrain",
        ),
    ],
)  # fmt: skip
def test_backbone_settings_are_checked(mutate, needle):
    cfg = smoke()
    mutate(cfg)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        Pipeline(cfg)


def test_a_job_over_seeds_runs_as_one_job_per_seed():
    """params.seeds + <name>_seed<N> entries: each seed's job sees its own files under the plain
    name, the shared ones unchanged, and its seed in params and wildcards (its MLflow run)."""
    from core.jobs.job import Job

    cfg = smoke()
    cfg["seeds"] = [0, 3]
    p = Pipeline(cfg)
    outputs = p.per_seed(lambda s: {"model": f"m/seed{s}", "metrics": f"m/seed{s}/train.json"})
    assert outputs == {"model_seed0": "m/seed0", "metrics_seed0": "m/seed0/train.json",
                       "model_seed3": "m/seed3", "metrics_seed3": "m/seed3/train.json"}  # fmt: skip
    assert p.seeded_resources("train")["runtime"].base == 2 * p.resources("train")["runtime"].base
    job = Job(rule="r", input={"data": "d.parquet", "reward_seed0": "r0", "reward_seed3": "r3"}, output=outputs,
              params={"seeds": [0, 3], "train": {"max_steps": 1}}, wildcards={"variant": "v"})  # fmt: skip
    views = job.per_seed()
    assert [v.params["seed"] for v in views] == [0, 3] and all("seeds" not in v.params for v in views)
    assert views[1].input == {"data": "d.parquet", "reward": "r3"}
    assert views[1].output == {"model": "m/seed3", "metrics": "m/seed3/train.json"}
    assert views[1].wildcards == {"variant": "v", "seed": "3"} and views[1].run_name == "r[seed=3,variant=v]"
    assert Job(rule="r", input={}, output={"x": "y"}, params={}, wildcards={}).per_seed()[0].output == {"x": "y"}
    stray = Job(rule="r", input={}, output={"model_seed7": "m"}, params={"seeds": [0]}, wildcards={})
    with pytest.raises(ValueError, match=r"seeds \['7'\]"):
        stray.per_seed()
    # what a job computes once for all its seeds lives in its own cache, shared by its seeds' views
    # and never serialised (a relaunched or warm-started process starts with an empty one)
    views[0].cache["benchmarks"] = {"k": object()}
    assert views[1].cache is job.cache and "benchmarks" in job.cache
    assert "cache" not in job.to_dict() and Job(**job.to_dict()).cache == {}
    assert Job(rule="r", input={}, output={}, params={}, wildcards={}).cache is not job.cache


def test_retried_jobs_get_more_memory_and_time():
    """mem_mb and runtime are Snakemake callables of ``attempt``: the retry (profiles' ``retries:
    1``) asks for twice the config's memory and time; CPUs and GPUs stay."""
    cfg = smoke()
    cfg["seeds"] = [0, 3]
    cfg["resources"]["train"].update(nproc=2, gpu=2)
    p = Pipeline(cfg)
    train = cfg["resources"]["train"]
    for res, mem, runtime in (
        (p.resources("train"), 2 * train["mem_mb"], train["runtime"]),
        (p.seeded_resources("train"), 2 * train["mem_mb"], 2 * train["runtime"]),
        (p.resources("light"), cfg["resources"]["light"]["mem_mb"], cfg["resources"]["light"]["runtime"]),
    ):
        assert [res["mem_mb"]({}, attempt=a) for a in (1, 2, 3)] == [mem, 2 * mem, 3 * mem]
        assert [res["runtime"]({}, attempt=a) for a in (1, 2)] == [runtime, 2 * runtime]
        assert res["mem_mb"].base == mem and res["runtime"].base == runtime
    assert p.resources("train")["cpus_per_task"] == 2 * train["threads"] and p.resources("train")["gpu"] == 2


def test_loss_settings_are_the_trainers_own_fields(pipe, tmp_path):
    """What a rule passes is DRDPOConfig's / DRPPOConfig's vocabulary: no renaming on the way."""
    from core.trainers.dpo import DRDPOConfig
    from core.trainers.ppo import DRPPOConfig

    for method, beta, gamma in [("dpo", "0.5", "none"), ("pdpo", "0.5", "linear"), ("edpo", "0.5", "constant")]:
        loss = pipe.distill_loss(method, beta, gamma)
        loss["loss_type"] = [loss["loss_type"]]
        args = DRDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **loss)
        assert args.beta == 0.5
        if gamma != "none":
            assert args.gamma_schedule == gamma
    dr = pipe.dr_dpo_loss("tv", "0.5")
    assert dr == {"loss_type": "dpo", "beta": pipe.cfg["dr"]["dpo"]["beta"], "divergence": "tv", "rho": 0.5}
    for version, div, rho in pipe.ppo_grid():
        DRPPOConfig(
            output_dir=str(tmp_path), use_cpu=True, report_to="none", robust_version=version, divergence=div, rho=rho
        )


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (
            lambda c: c["dr"]["reward"]["grids"]["no-hh-rlhf"].__setitem__("tv", [-0.1]),
            "dr.reward.grids.no-hh-rlhf.tv[0]",
        ),
        (lambda c: c["distill"]["gamma"].__setitem__("schedule", "anneal"), "distill.gamma.schedule"),
        (lambda c: c["dr"]["ppo"].__setitem__("variant", "nope"), "dr.ppo.variant"),
        (
            lambda c: c["dr"]["reward"]["grids"]["no-hh-rlhf"].__setitem__("cvar", [1.5]),
            "dr.reward.grids.no-hh-rlhf.cvar",
        ),
    ],
)
def test_bad_config_names_the_key(mutate, key):
    cfg = smoke()
    mutate(cfg)
    with pytest.raises(ConfigError, match=re.escape(f"config key {key}")):
        Pipeline(cfg)


def _set(*path_value):
    """A config mutation: the value at the key path (dict keys and list indices)."""
    *path, last, value = path_value

    def mutate(cfg):
        node = cfg
        for k in path:
            node = node[k]
        node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("sft", "train", "max_steps", 0), "config key sft.train.max_steps: 0 is less than the minimum of 1"),
        (
            _set("dr", "reward", "train", "max_steps", -1),
            "config key dr.reward.train.max_steps: -1 is less than the minimum of 1",
        ),
        (
            _set("dr", "reward", "grids", "no-hh-rlhf", "tv", [0.5, float("inf")]),
            "config key dr.reward.grids.no-hh-rlhf.tv[1]: rho must be a finite number >= 0, got inf",
        ),
        (
            _set("dr", "ppo", "rho", [float("nan")]),
            "config key dr.ppo.rho[0]: rho must be a finite number >= 0, got nan",
        ),
        (
            _set("dr", "dpo", "rho", [float("inf")]),
            "config key dr.dpo.rho[0]: rho must be a finite number >= 0, got inf",
        ),
        (_set("distill", "biases", [float("nan")]), "config key distill.biases[0]: expected a finite number, got nan"),
        (
            _set("data", "max_drop_fraction", 1.5),
            "config key data.max_drop_fraction: 1.5 is greater than the maximum of 1",
        ),
        (_set("data", "variants", "no-hh-rlhf", {"include": []}), "config key data.variants.no-hh-rlhf.include: []"),
        (
            _set("dr", "reward", "train", "precompute_ref_log_probs", True),
            "config key dr.reward.train.precompute_ref_log_probs: a DPO-family setting; allowed in dr.dpo.train",
        ),
    ],
)
def test_values_that_would_train_wrongly_are_refused_naming_the_key(mutate, message):
    """max_steps 0 trained one step at learning rate 0, -1 three epochs; rho inf crashed with a
    bare OverflowError, rho nan vanished from the grid; nan passes every schema bound."""
    cfg = smoke()
    mutate(cfg)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Pipeline(cfg)


def test_max_drop_fraction_defaults_to_five_percent_and_max_steps_may_be_left_out():
    cfg = smoke()
    del cfg["sft"]["train"]["max_steps"]
    cfg["sft"]["train"]["num_train_epochs"] = 2
    assert Pipeline(cfg).cfg["data"]["max_drop_fraction"] == 0.05


def test_a_key_given_twice_in_a_config_file_is_refused_with_file_line_and_key(tmp_path, monkeypatch):
    from core.plan.config import check_config_files, load_config_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "x.yaml"
    path.write_text("name: x\nseed: 0\ndata:\n  kind: real\n  split: {val: 0.1, val: 0.2}\nseed: 1\n")
    with pytest.raises(ConfigError, match=re.escape("config file configs/x.yaml line 6: duplicated key 'seed'")):
        check_config_files([path])
    path.write_text("name: x\ndata:\n  split: {val: 0.1, val: 0.2}\n")
    with pytest.raises(ConfigError, match=re.escape("config file configs/x.yaml line 3: duplicated key 'val'")):
        load_config_file(path)
    # keys merged in with << may be overridden; a byte-order mark is no key
    path.write_bytes(b"\xef\xbb\xbfbase: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")
    assert load_config_file(path) == {"base": {"x": 1, "y": 2}, "other": {"x": 3, "y": 2}}
    check_config_files([REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))])


# ------------------------------------------------------------------ the data scripts
def _jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_load_dataset_writes_every_dropped_row_and_keeps_them_when_it_fails(tmp_path):
    import json

    from core.data import read_pairs
    from core.jobs.job import Job

    good = [
        json.dumps({"id": f"g{i}", "prompt": "p", "chosen": f"y{i}", "rejected": "n", "source": "s"}) for i in range(9)
    ]
    src = tmp_path / "src.jsonl"
    src.write_text("\n".join(good + ["{broken"]) + "\n", encoding="utf-8")
    paths = Paths(str(tmp_path / "results")).load_outputs("pool")
    log = str(tmp_path / "logs" / "load_pool.log")
    job = Job(rule="load_dataset", input={}, output=paths, wildcards={"dataset": "pool"}, log=[log],
              params={"spec": {"source": str(src), "format": "normalised"}, "on_bad_rows": "drop",
                      "max_drop_fraction": 0.1})  # fmt: skip
    data_jobs.load_dataset(job)
    assert len(read_pairs(paths["data"])) == 9
    assert json.loads(Path(paths["report"]).read_text())["n_dropped"] == 1
    [row] = _jsonl(Path(paths["dropped"]))
    assert row["file"] == str(src) and row["line"] == 10 and row["reason"].startswith("invalid JSON")
    job.params["max_drop_fraction"] = 0.05  # 1 of 10 is too many: the rows go beside the log
    with pytest.raises(ValueError, match=re.escape(f"{src} (format 'normalised'): 1 of 10 records are bad rows")):
        data_jobs.load_dataset(job)
    assert _jsonl(Path(log + ".dropped.jsonl")) == [row]


def test_filter_sources_script_names_the_variant_that_keeps_nothing(tmp_path):
    from core.data import rows_to_dataset, write_pairs
    from core.jobs.job import Job

    pool = tmp_path / "pool.parquet"
    write_pairs(rows_to_dataset([{"id": "a", "prompt": "p", "chosen": "y", "rejected": "n", "source": "s"}]), pool)
    job = Job(rule="filter_sources", input={"0": str(pool)}, output={"0": str(tmp_path / "f.parquet")},
              params={"spec": {"exclude": ["s"]}}, wildcards={"variant": "no-s"})  # fmt: skip
    with pytest.raises(ValueError, match=r"^variant 'no-s' \(config key data.variants.no-s\): no row left of 1"):
        data_jobs.filter_sources(job)


# ------------------------------------------------------------------ the workflow layer's shape
def code_lines(path: Path) -> int:
    """Lines that are not blank, not comments and not docstrings."""
    text = path.read_text()
    docstring_lines: set[int] = set()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            body = getattr(node, "body", None)
            if (
                isinstance(body, list)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and i not in docstring_lines
    )


def test_workflow_scripts_are_thin():
    """A workflow script names its rule and calls one job function of core.jobs (entrypoint, or
    run_script for a real-text job): what a job does lives in core.jobs, one module per kind."""
    sizes = {p.name: code_lines(p) for p in (REPO / "workflow_scripts").glob("*.py")}
    assert sizes and max(sizes.values()) <= 12, {k: v for k, v in sizes.items() if v > 12}
    for path in (REPO / "workflow_scripts").glob("*.py"):
        tree = ast.parse(path.read_text())
        defs = {n.name: len(n.body) for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        # a real-text script's ``main(snakemake)`` only unpacks the Snakemake object for its job function
        assert set(defs) <= {"main"} and defs.get("main", 0) <= 3, (path.name, defs)
        assert calls.count("entrypoint") + calls.count("run_script") == 1, (path.name, calls)


def test_plan_and_report_functions_read_in_one_screen():
    """The specs and the report are small functions over typed specs (core.report.spec_types):
    none in core.plan or core.report runs over ~60 lines."""
    long = [
        f"{path.relative_to(REPO)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for pkg in ("plan", "report")
        for path in (REPO / "core" / pkg).glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 65
    ]
    assert not long, long


def test_rules_hold_rules():
    smk = sorted((REPO / "rules").glob("*.smk"))
    defs = {p.name: len(re.findall(r"^def ", p.read_text(), re.M)) for p in smk}
    assert sum(defs.values()) <= 15, defs
    assert {k for k, v in defs.items() if v} <= {"common.smk"}, defs  # functions in one file, no rules there
    assert not re.search(r"^\s*rule ", (REPO / "rules" / "common.smk").read_text(), re.M)
    sizes = {
        p.name: sum(1 for line in p.read_text().splitlines() if line.strip() and not line.strip().startswith("#"))
        for p in smk
    }
    assert max(sizes.values()) <= 250, sizes


def test_no_tracked_file_points_outside_the_repository():
    """Nothing depends on the files beside the repository, except a config's data: a config that
    reads real data names where it lies here (with the public source of every file)."""
    import re
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    data_path = re.compile(r"\.\./shared/data\b")

    def text(f: str) -> str:
        body = (REPO / f).read_text(errors="ignore")
        return data_path.sub("", body) if f.startswith("configs/") else body

    hits = [
        f
        for f in files
        if (REPO / f).is_file() and f != "tests/test_pipeline.py" and ("../shared" in text(f) or "DESIGN.md" in text(f))
    ]
    assert not hits, hits


LAYER = {
    "vocab": 0,
    "atomic": 0,
    "lazy": 0,
    "dro": 1,
    "losses": 1,
    "data": 2,
    "models": 2,
    "trainers": 3,
    "eval": 4,
    "theory": 5,
    "report": 6,
    "tracking": 7,
    "mlflow_ui": 7,
    "plan": 8,
    "jobs": 9,
}


def test_lower_layers_never_import_upper_ones():
    """docs/design.md §4: a module of core imports only its own layer or the layers below."""
    bad = []
    for path in (REPO / "core").rglob("*.py"):
        rel = path.relative_to(REPO / "core").parts
        if rel[0] == "__init__.py":
            continue
        own = LAYER[rel[0].removesuffix(".py")]
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            )
            for name in names:
                parts = name.split(".")
                if parts[0] == "core" and len(parts) > 1 and LAYER[parts[1]] > own:
                    bad.append(f"{'/'.join(rel)} imports {name}")
    assert not bad, bad


def test_the_plan_imports_no_torch_and_the_jobs_import_each_other_one_way():
    """core.plan (config, paths, grids, specs, rule helpers, the real-text plan) imports without
    torch, transformers, datasets, trl, mlflow or pandas; the job adapter (core.jobs: job, launch,
    warm, run, metrics, checkpoints) too; and no two modules of core.jobs import each other, even
    inside a function."""
    plan = sorted(f"core.plan.{p.stem}" for p in (REPO / "core" / "plan").glob("*.py") if p.stem != "__init__")
    adapter = [f"core.jobs.{m}" for m in ("job", "launch", "warm", "run", "metrics", "checkpoints", "gpus")]
    probe = (
        f"import sys; import {', '.join(plan + adapter)}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'transformers', 'datasets', 'trl', 'mlflow', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-1000:]
    graph: dict[str, set[str]] = {}
    for path in (REPO / "core" / "jobs").glob("*.py"):
        mod = f"core.jobs.{path.stem}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core.jobs."):
                graph.setdefault(mod, set()).add(node.module)
    circles = sorted((a, b) for a, deps in graph.items() for b in deps if a in graph.get(b, set()))
    assert not circles, circles

    def reach(start: str, seen: set[str]) -> set[str]:
        for nxt in graph.get(start, set()) - seen:
            seen.add(nxt)
            reach(nxt, seen)
        return seen

    assert not [m for m in graph if m in reach(m, set())]


def test_packages_reexport_in_one_lazy_style():
    """Every package ``__init__`` of core is a docstring, or core.lazy's ``lazy_exports`` and nothing
    else; importing the packages imports no heavy library, and each exported name resolves to the
    object its module defines."""
    import importlib

    styles = {}
    for init in sorted((REPO / "core").glob("*/__init__.py")):
        body = [n for n in ast.parse(init.read_text()).body if not isinstance(n, ast.Expr)]
        imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in imports for a in n.names}
        styles[init.parent.name] = "lazy" if "lazy_exports" in names else ("docstring" if not body else "other")
        assert names <= {"annotations", "lazy_exports"}, (init, names)
    assert styles["data"] == styles["trainers"] == styles["eval"] == "lazy" and "other" not in styles.values()
    probe = (
        "import sys, core.data, core.trainers, core.eval; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'datasets', 'transformers', 'trl'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-1000:]
    for package in ("core.data", "core.eval"):
        mod = importlib.import_module(package)
        for name in mod.__all__:
            value = getattr(mod, name)
            if hasattr(value, "__module__"):  # functions and classes (constants are tuples)
                assert value.__module__.startswith(package + ".") and name in vars(mod), (package, name)
                assert getattr(importlib.import_module(value.__module__), name) is value, (package, name)


def test_ppo_is_also_judged_by_the_oracle_reward_of_its_samples(pipe):
    """Table 3b reads each PPO row's oracle_id / oracle_ood files (mean over domains, advantage over
    pi_ref, the world's domains out of distribution), plus pi_ref's own row from the same files;
    claims c4/c5 compare those means, with rho chosen on validation."""
    spec = pipe.specs.tables()["table3_oracle"]
    labels = [c.label for c in spec.columns]
    assert labels[:4] == ["ID reward", "ID adv. over π_ref", "OOD reward", "OOD adv. over π_ref"]
    assert {f"OOD {d}" for d in ("chat", "chat-hard", "safety", "reasoning")} <= set(labels)
    ppo_rows = [r for r in spec.rows if r.group != "reference"]
    assert len(ppo_rows) == len(pipe.ppo_grid())
    assert ppo_rows[0].cells["OOD reward"].files == tuple(
        pipe.paths.metrics(pipe.paths.ppo("no-hh-rlhf", "none", "none", 0.0, s), "oracle_ood") for s in pipe.seeds()
    )
    sft = spec.rows[-1]
    assert sft.label == "SFT (π_ref)" and sft.cells["ID reward"].key == "metrics/reference/overall/mean"
    assert "ID adv. over π_ref" not in sft.cells
    c5 = pipe.specs.claims()["c5"][0]
    assert c5.key == "metrics/overall/mean" and c5.benchmark == "oracle_ood"
    assert c5.treatment.select_key.endswith("/accuracy")  # rho chosen on validation accuracy
    assert all(f.endswith("/id.json") for f, _ in c5.degenerate)


def test_each_claim_and_gate_is_declared_once_with_what_it_compares(pipe):
    """A claim's entry in core.report.paper_claims names what it compares; the plan turns it into
    this config's files with no per-claim code: a new claim with an existing comparison reads the
    same files as the claim it copies, and a comparison the plan does not know is refused."""
    import dataclasses

    from core.report.paper_claims import CLAIMS, GATES, Claim, RobustVsPlain

    assert all(c.measure is not None for c in CLAIMS) and all(g.measure is not None for g in GATES.values())
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    cells = pipe.specs.claims()
    assert set(cells) <= {c.id for c in CLAIMS} and "b2" in cells
    b2 = next(c for c in CLAIMS if c.id == "b2")
    new = dataclasses.replace(b2, id="z")
    (cell,) = pipe.specs.claim_cells(new)
    assert cell == dataclasses.replace(cells["b2"][0], id="z")
    other = pipe.specs.claim_cells(dataclasses.replace(b2, id="z", measure=RobustVsPlain("rm")))
    assert other[0].baseline.files == tuple(
        pipe.paths.metrics(pipe.paths.rm(pipe.cfg["report"]["rm_variant"], "none", 0.0, s), "hhh") for s in pipe.seeds()
    )

    @dataclasses.dataclass(frozen=True)
    class Unknown:
        pass

    with pytest.raises(TypeError, match="claim y: no plan for a Unknown"):
        pipe.specs.claim_cells(Claim("y", "DR", "", "", "", "", "", "id", measure=Unknown()))
    assert list(pipe.specs.gates()) == [g for g in GATES if g in pipe.specs.gates()]


def test_learning_curves_and_convergence_gates_read_the_families_train_files(pipe):
    """The budget figure and the convergence gates read the validation-loss curves of the BTL RM,
    DPO and the distillation DPO policy at their configured budgets (every seed)."""
    fams = pipe.specs.learning_families()
    assert set(fams) == {"rm", "dpo", "distill"}
    rm = fams["rm"]
    assert rm.budget == pipe.cfg["dr"]["reward"]["train"]["max_steps"]
    assert rm.files == tuple(pipe.paths.metrics(pipe.paths.rm("no-hh-rlhf", "none", 0.0, s), "train")
                             for s in pipe.seeds())  # fmt: skip
    gates = pipe.specs.gates()
    assert gates["dpo_converged"] == FlattensBefore(fams["dpo"].files, fams["dpo"].budget)
    assert "learning_curves" in pipe.specs.figures()
    fig_files = pipe.specs.figure_files("learning_curves")
    series = pipe.specs.figure("learning_curves").series
    assert set(rm.files) <= set(fig_files) and set(fig_files) <= set(pipe.specs.claim_files()) | {
        f for s in series for f in s.files}  # fmt: skip
    epochs = smoke()
    epochs["dr"]["reward"]["train"] = {"num_train_epochs": 2, "learning_rate": 1e-3}
    assert Pipeline(epochs).specs.learning_families()["rm"].budget is None


def _readme_own_data_config() -> dict:
    """configs/small-real-lm.yaml with the keys README's "Your own preference data" example replaces."""
    text = (REPO / "README.md").read_text(encoding="utf-8").split("## Your own preference data", 1)[1]
    example = yaml.safe_load(text.split("```yaml", 1)[1].split("```", 1)[0])
    cfg = yaml.safe_load((REPO / "configs" / "small-real-lm.yaml").read_text(encoding="utf-8"))
    cfg.update({k: v for k, v in example.items() if k != "eval"})
    cfg["eval"]["benchmarks"] = example["eval"]["benchmarks"]
    return cfg


def test_readme_own_data_example_builds_btl_and_dr_tables(tmp_path, monkeypatch):
    import json

    import core.models

    # the example's models are small-real's packaged ones; this test is about its data and tables
    monkeypatch.setattr(core.models, "packaged_model_available", lambda dist: (True, ""))

    from core.data import read_pairs, rows_to_dataset, write_pairs
    from core.jobs.job import Job
    from core.plan.config import validate_config

    # the README's two files: a JSONL of string rows and a parquet of message-list rows (normalised schema)
    rows = [{"id": f"r{i}", "prompt": "Q?", "chosen": f"good {i}", "rejected": "bad", "source": "my-source-a"}
            for i in range(4)]  # fmt: skip
    msgs = [{**r, "prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "y"}],
             "rejected": [{"role": "assistant", "content": "n"}]} for r in rows]  # fmt: skip
    (tmp_path / "my_prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_pairs(rows_to_dataset(msgs), tmp_path / "my_heldout.parquet")
    cfg = _readme_own_data_config()
    for spec in cfg["data"]["sources"].values():
        spec["source"] = str(tmp_path / Path(spec["source"]).name)
    validate_config(cfg)
    table8 = Pipeline(cfg).specs.tables()["table8"]
    labels = [r.label for r in table8.rows]
    assert "BTL RM" in labels and any(lab.startswith("DR RM") for lab in labels)
    assert "My held-out pairs" in {c.label for c in table8.columns}
    for name, spec in cfg["data"]["sources"].items():
        paths = Paths(str(tmp_path / "results")).load_outputs(name)
        job = Job(rule="load_dataset", input={}, output=paths, wildcards={"dataset": name}, log=[],
                  params={"spec": spec, "on_bad_rows": "drop", "max_drop_fraction": 0.05})  # fmt: skip
        data_jobs.load_dataset(job)
        assert len(read_pairs(paths["data"])) == 4
    assert read_pairs(paths["data"])[0]["chosen"] == [{"role": "assistant", "content": "y"}]


def _distill_cells(spec: Table) -> dict[tuple[str, str], list[str]]:
    """(row, column) -> the metrics files of each cell of a distillation table."""
    return {(r.label, c): cell.inputs() for r in spec.rows for c, cell in r.cells.items()}


def test_claims_rows_keep_only_the_distillation_models_a_claim_or_gate_reads():
    """`report.rows: claims` (config.yaml) drops the distillation cells whose models nothing in
    the claims table reads — so the DAG never trains them — and `all` (make all-tables) keeps the
    whole grid: claim d reads every method but p-DPO at the biases 0.25 or more from 0.5, claim e
    p-DPO, d-DPO and DPO at Figure B.1's bias, the gates DPO at the bias nearest 0.5."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    assert cfg["report"]["rows"] == "claims"
    claims = Pipeline(copy.deepcopy(cfg)).specs
    full = Pipeline({**cfg, "report": {**cfg["report"], "rows": "all"}}).specs
    runs = claims.claim_runs()
    cut, whole = claims.tables()["figure2"], full.tables()["figure2"]
    present = {(r.label, c) for r in cut.rows for c in r.cells}
    assert present == {
        *((m, b) for m in ("DPO", "IPO", "d-DPO", "e-DPO") for b in ("bias = 0.2", "bias = 0.8")),
        ("DPO", "bias = 0.5"),
        ("p-DPO", "bias = 0.2"),
    }
    assert {(r.label, c) for r in whole.rows for c in r.cells} == {
        (m, f"bias = {b}") for m in ("DPO", "IPO", "d-DPO", "p-DPO", "e-DPO") for b in ("0.2", "0.5", "0.8")
    }
    for name in claims.distill.tables():  # every kept cell reads only models a claim reads
        for cell, files in _distill_cells(claims.tables()[name]).items():
            assert files and all(os.path.dirname(f) in runs for f in files), (name, cell)
    dropped = set(full.table_files("figure2")) - set(claims.table_files("figure2"))
    assert dropped and not {os.path.dirname(f) for f in dropped} & runs
    assert [r.label for r in claims.tables()["figureB3"].rows] == ["bias = 0.2", "bias = 0.8"]
    assert "make all-tables" in cut.footnote and whole.footnote is None  # the reader learns what "–" means
    assert claims.tables()["figureB1"].footnote is None  # nothing left out there
    # the claims themselves do not change
    assert claims.claims() == full.claims() and claims.gates() == full.gates()


def test_claims_rows_train_no_model_only_a_non_claim_row_reads():
    """Figure B.5's constant-gamma e-DPO feeds no claim: with `rows: claims` its row is left out
    (only the annealed row, whose models claim d reads, stays), so no constant-gamma model is
    trained; `rows: all` has both rows."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["distill"]["gamma"]["compare_constant"] = True
    cut = Pipeline(copy.deepcopy(cfg)).specs
    cfg["report"]["rows"] = "all"
    full = Pipeline(cfg).specs
    assert [r.label for r in full.tables()["figureB5"].rows] == ["with annealing", "w/o annealing"]
    assert [r.label for r in cut.tables()["figureB5"].rows] == ["with annealing"]
    assert any("/constant/" in f for f in full.table_files("figureB5"))
    assert not any("/constant/" in f for n in cut.tables() for f in cut.table_files(n))


def test_hub_models_are_prefetched_once_and_jobs_then_run_offline(tmp_path, monkeypatch):
    """configs/paper.yaml names google/gemma-2b-it: `prefetch` (a local rule: the login node)
    downloads it once and records its commit, every rule that loads a hub model waits for that
    record, and every job runs with HF_HUB_OFFLINE=1; the embedded default names no hub model and
    its rules' params are unchanged."""
    import json
    import os

    import huggingface_hub

    from core.jobs.build import prefetch
    from core.jobs.job import Job
    from core.jobs.run import run_job

    paper = Pipeline(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))
    assert paper.hub_models() == ["google/gemma-2b-it"] and paper.control("train")["hub_offline"] is True
    assert paper.hub_input() == [paper.paths.prefetch()]
    default = Pipeline(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert default.hub_models() == [] and default.hub_input() == [] and "hub_offline" not in default.control("eval")
    calls = []

    def fake_download(repo, allow_patterns=None):
        calls.append((repo, tuple(allow_patterns)))
        return str(tmp_path / "hub" / "snapshots" / "abc123")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    out = tmp_path / "prefetch.json"
    prefetch(Job(rule="prefetch", input={}, output={"0": str(out)}, params={"models": paper.hub_models()},
                 wildcards={}))  # fmt: skip
    assert calls[0][0] == "google/gemma-2b-it" and "*.safetensors" in calls[0][1]
    assert json.loads(out.read_text())["models"]["google/gemma-2b-it"]["revision"] == "abc123"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = []
    job = Job(rule="train_dpo_dr", input={}, output={}, params=paper.control("light"), wildcards={})
    run_job(lambda j: seen.append(os.environ.get("HF_HUB_OFFLINE")), job)
    assert seen == ["1"]
