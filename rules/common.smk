# Shared helpers of the workflow: config validation, number formatting for wildcards, the path
# scheme of every artifact, the experiment grids read from the config, and input functions.
#
# Path scheme (all under results/; {seed} is a replicate seed, numbers are formatted by fmt()):
#   data/raw/{dataset}.parquet                       normalised preference sets (DESIGN.md §2)
#   data/dr/{variant}/{filtered,train,val,test}.parquet, data/dr/{variant}/sub_{purpose}.parquet
#   data/distill/{relabelled,train,val,test}.parquet, data/distill/bias{bias}/{train,ens{b},targets}.parquet
#   models/base/{tokenizer,policy,reward,ppo_reward}   models/sft   models/oracle
#   models/dr/rm/{variant}/{div}/rho{rho}/seed{seed}        DR paper reward models (Alg. 1)
#   models/dr/rm_ppo/...   the same grid point from models.ppo_reward (when PPO needs another backbone)
#   models/dr/ppo/{variant}/{version}/{div}/rho{rho}/seed{seed}   PPO / DR-PPO vA, vB
#   models/dr/dpo/{variant}/{div}/rho{rho}/seed{seed}       DPO / DR-DPO (Alg. 3)
#   models/distill/rm/bias{bias}/{member}                   r_rho ("full") and r_{rho,b} ("ens{b}")
#   models/distill/{method}/bias{bias}/beta{beta}/{gamma}/seed{seed}
#   metrics/<same relative path as the model>/{train,<benchmark>,oracle_val,oracle_test}.json
#   tables/<name>.{csv,md}   figures/<name>.png   report.{md,html}   mlflow.db (default tracking URI)

import math
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

RESULTS = "results"
SCHEMA = "../schemas/config.schema.yaml"

# raw datasets the synthetic world writes (results/data/raw/<name>.parquet) -> generate_world split
WORLD_DATASETS = {"pool": "train", "world_test": "test", "world_eval": "eval", "sft": "sft", "prompts": "prompts"}
PESSIMISTIC = ("pdpo", "dpdpo", "edpo")
NUM = r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?"


# --------------------------------------------------------------------------------------------
# config validation
# --------------------------------------------------------------------------------------------
def _key_path(error) -> str:
    """'dr.reward.grids.unfiltered.tv[0]' from a jsonschema error's absolute path."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _schema_error_message(error) -> str:
    import jsonschema

    # descend into the most specific sub-error (oneOf/anyOf report their branches as context)
    best = jsonschema.exceptions.best_match([error]) if error.context else error
    key = _key_path(best)
    if best.validator == "additionalProperties":
        return f"config key {key}: {best.message} (allowed keys: {sorted(best.schema.get('properties', {}))})"
    return f"config key {key}: {best.message}"


def validate_config(cfg: dict) -> None:
    """Validate ``cfg`` against schemas/config.schema.yaml (filling its defaults), then run the
    checks JSON schema cannot express; raise a WorkflowError naming the offending key."""
    import jsonschema

    try:
        validate(cfg, SCHEMA)
    except WorkflowError as exc:
        # snakemake.utils.validate raises WorkflowError while handling jsonschema's error
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, jsonschema.exceptions.ValidationError):
            raise
        raise WorkflowError(_schema_error_message(cause)) from None
    problems = semantic_problems(cfg)
    if problems:
        raise WorkflowError("invalid config:\n  " + "\n  ".join(problems))


HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def _check_model(key: str, spec: dict) -> list:
    """A model path must exist (local), look like a hub id (hub) or be an installed package."""
    src, path = spec["source"], spec.get("path", "")
    if src == "local" and not Path(os.path.expanduser(path)).exists():
        return [f"config key {key}.path: local model path {path!r} does not exist"]
    if src == "hub" and not HUB_ID.match(path):
        return [f"config key {key}.path: {path!r} is not a hub id (owner/name)"]
    if src == "package":
        from core.models import PACKAGED_MODELS, packaged_model_available

        if path not in PACKAGED_MODELS:
            return [f"config key {key}.path: unknown packaged model {path!r} (known: {sorted(PACKAGED_MODELS)})"]
        ok, why = packaged_model_available(path)
        if not ok:
            return [f"config key {key}.path: packaged model {path!r} is not available: {why}"]
    return []


def raw_datasets(cfg: dict) -> list:
    """Names of results/data/raw/<name>.parquet this config can produce."""
    if cfg["data"]["kind"] == "synthetic":
        return list(WORLD_DATASETS)
    return list(cfg["data"]["sources"])


def semantic_problems(cfg: dict) -> list:
    """Cross-key checks: model paths, dataset names, variant references, grid ranges."""
    out = []
    for role in [r for r in ("policy", "reward", "ppo_reward") if r in cfg["models"]]:
        out += _check_model(f"models.{role}", cfg["models"][role])
        if cfg["models"][role]["source"] == "build" and cfg["data"]["kind"] != "synthetic":
            out.append(f"config key models.{role}.source: 'build' trains a tokenizer on the synthetic "
                       "world's corpus, so it needs data.kind: synthetic")
    ppo_rm = cfg["models"].get("ppo_reward", cfg["models"]["reward"])
    pol = cfg["models"]["policy"]
    same_tokenizer = (ppo_rm["source"] == pol["source"] == "build") or (
        ppo_rm["source"] == pol["source"] and ppo_rm.get("path") == pol.get("path"))
    if not same_tokenizer:
        out.append("config key models.ppo_reward: PPO scores the policy's tokens with its reward model, so that "
                   "model needs the policy's tokenizer; models.reward differs from models.policy, so set "
                   "models.ppo_reward to a reward-model spec on the policy's backbone")
    raw = raw_datasets(cfg)
    if cfg["data"]["kind"] == "real":
        if "pool" not in cfg["data"]["sources"]:
            out.append("config key data.sources.pool: required when data.kind is 'real' (the DR training pool)")
        for name, spec in cfg["data"]["sources"].items():
            src = spec["source"]
            if src.startswith("bigbench:"):
                continue
            looks_local = src.startswith((".", "/", "~")) or os.path.splitext(src)[1] in (".json", ".jsonl", ".gz", ".parquet", ".csv")
            if looks_local and not Path(os.path.expanduser(src)).exists():
                out.append(f"config key data.sources.{name}.source: local path {src!r} does not exist")
    for key, name in (("sft.dataset", cfg["sft"]["dataset"]), ("distill.data", cfg["distill"]["data"])):
        if name not in raw:
            out.append(f"config key {key}: unknown dataset {name!r} (available: {raw})")
    for bench, spec in cfg["eval"]["benchmarks"].items():
        if spec["data"] not in raw:
            out.append(f"config key eval.benchmarks.{bench}.data: unknown dataset {spec['data']!r} (available: {raw})")
    variants = cfg["data"]["variants"]
    refs = [("dr.ppo.variant", cfg["dr"]["ppo"]["variant"]), ("dr.dpo.variant", cfg["dr"]["dpo"]["variant"]),
            ("report.rm_variant", cfg["report"]["rm_variant"])]
    refs += [(f"report.subset_tables.{t}", v[0]) for t, v in cfg["report"]["subset_tables"].items()]
    refs += [(f"dr.reward.grids.{v}", v) for v in cfg["dr"]["reward"]["grids"]]
    for key, variant in refs:
        if variant not in variants:
            out.append(f"config key {key}: unknown variant {variant!r} (data.variants has {sorted(variants)})")
    cvar_lists = [(f"dr.reward.grids.{v}.cvar", g.get("cvar", [])) for v, g in cfg["dr"]["reward"]["grids"].items()]
    cvar_lists += [(f"dr.{k}.rho", cfg["dr"][k]["rho"]) for k in ("ppo", "dpo") if cfg["dr"][k]["divergence"] == "cvar"]
    for key, values in cvar_lists:
        if any(float(r) > 1 for r in values):
            out.append(f"config key {key}: cvar reads rho as alpha, which must be <= 1")
    d = cfg["distill"]
    n, n_ens = int(d["n_train"]), int(d["ensemble_n"])
    for rho in d["biases"]:
        longer = math.floor(float(rho) * n + 0.5)
        for b in d["ensemble_b"]:
            k = math.floor(float(b) * n_ens + 0.5)
            if k > longer or n_ens - k > n - longer:
                out.append(f"config key distill.ensemble_n: {n_ens} pairs with longer-preferred fraction {b} "
                           f"cannot be drawn from D_rho (rho={rho}, {n} pairs: {longer} longer-preferred)")
    for kind, r in cfg["resources"].items():
        gpu, nproc = int(r.get("gpu", 0)), int(r.get("nproc", 1))
        if kind != "train" and nproc != 1:
            out.append(f"config key resources.{kind}.nproc: only training jobs run in several processes "
                       f"(resources.train.nproc); expected 1, got {nproc}")
        if gpu and nproc > gpu:
            out.append(f"config key resources.{kind}.nproc: {nproc} processes need one GPU each, "
                       f"but resources.{kind}.gpu is {gpu}")
    b1 = cfg["report"]["figureB1"]
    if float(b1["bias"]) not in [float(b) for b in cfg["distill"]["biases"]]:
        out.append(f"config key report.figureB1.bias: {b1['bias']} is not in distill.biases")
    if float(b1["beta"]) not in [float(b) for b in cfg["distill"]["beta"]]:
        out.append(f"config key report.figureB1.beta: {b1['beta']} is not in distill.beta")
    return out


# --------------------------------------------------------------------------------------------
# formatting of numbers in wildcards
# --------------------------------------------------------------------------------------------
def fmt(x) -> str:
    """Canonical text of a grid value inside a path: 0.1 -> '0.1', 1.0 -> '1', 1e-4 -> '0.0001'."""
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = repr(x)
    if "e" in text:
        text = f"{x:.12f}".rstrip("0")
    return text


wildcard_constraints:
    seed=r"[0-9]+",
    rho=NUM,
    bias=NUM,
    beta=NUM,
    b=NUM,
    variant=r"[A-Za-z0-9_-]+",
    div=r"none|tv|chi2|kl|cvar",
    version=r"std|vA|vB",
    method=r"dpo|ipo|ddpo|pdpo|dpdpo|edpo",
    gamma=r"none|anneal|const",
    rmset=r"rm|rm_ppo",
    member=r"full|ens" + NUM,
    bench=r"id|rewardbench|hhh|mtbench",
    split=r"train|val|test",
    purpose=r"rm|ppo|dpo",
    name=r"[A-Za-z0-9_]+",


# --------------------------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------------------------
def threads_of(kind: str) -> int:
    """Cores a job of ``kind`` occupies: ``threads`` per process times ``nproc`` processes."""
    r = config["resources"][kind]
    return int(r["threads"]) * int(r.get("nproc", 1))


def resources_of(kind: str) -> dict:
    """Scheduler resources of a job: memory and CPUs scale with its processes (``nproc``)."""
    r = config["resources"][kind]
    nproc = int(r.get("nproc", 1))
    out = {"mem_mb": int(r["mem_mb"]) * nproc, "runtime": r["runtime"], "cpus_per_task": threads_of(kind)}
    if r.get("gpu", 0):
        out["gpu"] = r["gpu"]
    return out


def conda_env(kind: str) -> str:
    """The conda environment of a rule (used with --software-deployment-method conda)."""
    return "../envs/gpu.yaml" if int(config["resources"][kind].get("gpu", 0)) > 0 else "../envs/cpu.yaml"


def job_params(kind: str) -> dict:
    """Non-result parameters every script gets (not a rerun trigger worth caring about)."""
    r = config["resources"][kind]
    return {"nproc": int(r.get("nproc", 1)), "gpu": int(r.get("gpu", 0))}


def tracking() -> dict:
    return {"uri": config["tracking"]["uri"], "experiment": config["name"]}


# --------------------------------------------------------------------------------------------
# models: where the base / reference models come from
# --------------------------------------------------------------------------------------------
def base_model(role: str) -> str:
    """Path or hub id of the base model of ``role`` ('policy', 'reward' or 'ppo_reward')."""
    spec = config["models"][role]
    if spec["source"] in ("build", "gguf", "package"):
        return f"{RESULTS}/models/base/{role}"
    return spec["path"]


def base_model_input(role: str) -> list:
    """Snakemake inputs for a base model: the materialised folder, or nothing for hub/local."""
    if config["models"][role]["source"] in ("build", "gguf", "package"):
        return [f"{RESULTS}/models/base/{role}"]
    return []


def reference_policy(which: str) -> str:
    """The reference policy (pi_ref) of the DR or distillation experiments: SFT or the base LM."""
    ref = config[which]["reference"]
    return f"{RESULTS}/models/sft" if ref == "sft" else base_model("policy")


def reference_policy_input(which: str) -> list:
    if config[which]["reference"] == "sft":
        return [f"{RESULTS}/models/sft"]
    return base_model_input("policy")


# --------------------------------------------------------------------------------------------
# experiment grids
# --------------------------------------------------------------------------------------------
def seeds() -> list:
    return [int(s) for s in config["seeds"]]


def rm_dir(variant, div, rho, seed, rmset="rm") -> str:
    """A DR-paper reward model; rmset 'rm_ppo' = the same grid point trained from
    models.ppo_reward (PPO scores the policy's tokens, so its RM needs the policy's tokenizer)."""
    return f"dr/{rmset}/{variant}/{div}/rho{fmt(rho)}/seed{seed}"


RMSET_ROLE = {"rm": "reward", "rm_ppo": "ppo_reward"}


def ppo_rmset() -> str:
    return "rm_ppo" if "ppo_reward" in config["models"] else "rm"


def rm_key(variant, div, rho) -> tuple:
    """BTL is one model per variant: rho = 0 (or divergence none) always maps to none/rho0."""
    if float(rho) == 0.0 or div == "none":
        return (variant, "none", 0.0)
    return (variant, div, float(rho))


def rm_grid(variant: str, div: str) -> list:
    """Rows of a reward-model table: BTL then DR over the configured rho grid."""
    grid = config["dr"]["reward"]["grids"].get(variant, {}).get(div, [])
    return [rm_key(variant, div, 0.0)] + [rm_key(variant, div, r) for r in grid if float(r) > 0]


def all_rm_keys() -> list:
    keys = []
    for variant, grids in config["dr"]["reward"]["grids"].items():
        for div in grids:
            for key in rm_grid(variant, div):
                if key not in keys:
                    keys.append(key)
    return keys


def ppo_dir(variant, version, div, rho, seed) -> str:
    return f"dr/ppo/{variant}/{version}/{div}/rho{fmt(rho)}/seed{seed}"


def ppo_grid() -> list:
    """(version, div, rho): standard PPO with the BTL RM, then vA and vB over the rho grid."""
    p = config["dr"]["ppo"]
    rows = [("std", "none", 0.0)]
    for version in p["versions"]:
        rows += [(version, p["divergence"], float(r)) for r in p["rho"] if float(r) > 0]
    return rows


def dpo_dir(variant, div, rho, seed) -> str:
    return f"dr/dpo/{variant}/{div}/rho{fmt(rho)}/seed{seed}"


def dpo_grid() -> list:
    p = config["dr"]["dpo"]
    return [("none", 0.0)] + [(p["divergence"], float(r)) for r in p["rho"] if float(r) > 0]


def distill_hparams(method: str) -> list:
    """The swept hyper-parameter of a method: tau for IPO, beta for the DPO family (Fig. B.4)."""
    d = config["distill"]
    return [float(x) for x in (d["tau"] if method == "ipo" else d["beta"])]


def gamma_modes(method: str) -> list:
    if method not in PESSIMISTIC:
        return ["none"]
    modes = [config["distill"]["gamma"]["schedule"]]
    if method == "edpo" and config["distill"]["gamma"]["compare_constant"]:
        modes = ["anneal", "const"]
    return modes


def distill_dir(method, bias, beta, gamma, seed) -> str:
    return f"distill/{method}/bias{fmt(bias)}/beta{fmt(beta)}/{gamma}/seed{seed}"


def distill_runs() -> list:
    """Every (method, bias, beta, gamma) policy of the distillation experiments."""
    runs = []
    for method in config["distill"]["methods"]:
        for bias in config["distill"]["biases"]:
            for beta in distill_hparams(method):
                for gamma in gamma_modes(method):
                    runs.append((method, float(bias), beta, gamma))
    return runs


def ensemble_members() -> list:
    return [f"ens{fmt(b)}" for b in config["distill"]["ensemble_b"]]


def eval_settings() -> dict:
    """The evaluation settings every scoring job shares (a rerun trigger of those jobs)."""
    e = config["eval"]
    return {"batch_size": e["batch_size"], "max_length": e["max_length"], "ties": e["ties"]}


def benchmark_spec(bench: str) -> dict:
    if bench == "id":
        return {"kind": "pairs", "label": config["report"]["id_label"]}
    return config["eval"]["benchmarks"][bench]


def dr_benchmarks() -> list:
    """Benchmarks of the DR tables present in this config ('id' is the variant's test split)."""
    return ["id"] + [b for b in ("rewardbench", "hhh", "mtbench") if b in config["eval"]["benchmarks"]]


def benchmark_data(bench: str, variant: str) -> str:
    if bench == "id":
        return f"{RESULTS}/data/dr/{variant}/test.parquet"
    return f"{RESULTS}/data/raw/{config['eval']['benchmarks'][bench]['data']}.parquet"


validate_config(config)
