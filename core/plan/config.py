"""Config validation of the workflow: the JSON schema (schemas/config.schema.yaml, defaults
filled in) and the cross-key checks it cannot express (every number finite among them: YAML's
``.inf`` and ``.nan`` are numbers to the schema). Every error names the offending key. Config
files themselves are read once more with :class:`StrictLoader` (:func:`check_config_files`),
which refuses a key given twice in one mapping: plain YAML, as Snakemake reads it, keeps the last.

This is the one place a config value is checked; later layers trust it (core.dro re-checks rho
only for direct library users)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from core.plan.paths import WORLD_DATASETS
from core.vocab import REWARDBENCH2_SUBSETS

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
LOCAL_SUFFIXES = (".json", ".jsonl", ".gz", ".parquet", ".csv")


class ConfigError(ValueError):
    """An invalid workflow config; the message names the key."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of a YAML document with the same key twice (:class:`StrictLoader`)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: duplicated key {key!r} (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a key given twice in one
    mapping (plain YAML silently keeps the last value). Keys merged in with ``<<`` may be
    overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) or key is None:
                if key in seen:
                    raise DuplicateKeyError(key, line, seen[key])
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _shown(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory when it lies under it, else as given."""
    rel = os.path.relpath(os.path.abspath(path))
    return str(path) if rel.startswith("..") else rel


def load_config_file(path: str | os.PathLike[str]) -> Any:
    """The YAML (or JSON) document of a config file read with :class:`StrictLoader`; a key given
    twice raises :class:`ConfigError` naming the file, the line and the key."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return yaml.load(fh, Loader=StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except DuplicateKeyError as err:
        raise ConfigError(
            f"config file {_shown(path)} line {err.line}: duplicated key {err.key!r} "
            f"(first at line {err.first_line}; YAML would silently keep the last value)"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {_shown(path)}: not valid YAML ({err})") from None


def check_config_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse config files with a duplicated key (every ``--configfile``, or config.yaml), before
    the config they were merged into is validated."""
    for path in paths:
        load_config_file(path)


def _key_path(error: Any) -> str:
    """'dr.reward.grids.unfiltered.tv[0]' from a jsonschema error's absolute path."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _schema_error_message(error: Any) -> str:
    import jsonschema

    # descend into the most specific sub-error (oneOf/anyOf report their branches as context)
    best = jsonschema.exceptions.best_match([error]) if error.context else error
    key = _key_path(best)
    if best.validator == "additionalProperties":
        allowed = sorted(best.schema.get("properties", {}))
        return f"config key {key}: {best.message} (allowed keys: {allowed})"
    return f"config key {key}: {best.message}"


def validate_config(cfg: dict) -> None:
    """Validate ``cfg`` against the schema (filling its defaults in place), then run the cross-key
    checks; raise :class:`ConfigError` naming the offending key."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(cfg, str(SCHEMA))
    except WorkflowError as exc:
        # snakemake.utils.validate raises WorkflowError while handling jsonschema's error
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, jsonschema.exceptions.ValidationError):
            raise
        raise ConfigError(_schema_error_message(cause)) from None
    problems = semantic_problems(cfg)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


#: Snakemake executors that run every job on this machine: one SQLite file is safe there
LOCAL_EXECUTORS = frozenset({"local", "dryrun", "touch"})


def tracking_warning(cfg: dict, executor: str | None) -> str | None:
    """A loud warning when the jobs run through a cluster executor (``executor`` is Snakemake's,
    e.g. ``slurm`` from ``profiles/slurm``) but log to a SQLite tracking URI: SQLite on a network
    filesystem is not safe with writers on several nodes, and a long lock stalls their logging
    (README, "Run on a SLURM cluster": a tracking server). None when there is nothing to warn about.
    It warns rather than refuses: on a one-node cluster (the CI's local SLURM) SQLite is fine."""
    uri = str((cfg.get("tracking") or {}).get("uri", ""))
    if executor is None or executor in LOCAL_EXECUTORS or not uri.startswith("sqlite:"):
        return None
    rule = "!" * 100
    return (
        f"{rule}\n!! tracking.uri is {uri!r}, a SQLite file, but the jobs run through the {executor!r} executor.\n"
        "!! SQLite on a network filesystem is not safe with writers on several nodes: runs can be lost or\n"
        "!! stall. Start a tracking server and point the config at it, e.g.\n"
        "!!   mlflow server --backend-store-uri postgresql://user@dbhost/mlflow --host 0.0.0.0 --port 5000\n"
        "!!   tracking: {uri: http://<that host>:5000}      (in your --configfile)\n"
        f"!! (README.md, 'Run on a SLURM cluster'). Going on with SQLite.\n{rule}"
    )


def _check_model(key: str, spec: dict) -> list[str]:
    """A model path must exist (local), look like a hub id (hub) or be an installed package."""
    src, path = spec["source"], spec.get("path", "")
    if src == "local" and not Path(os.path.expanduser(path)).exists():
        return [f"config key {key}.path: local model path {path!r} does not exist"]
    if src == "hub" and not HUB_ID.match(path):
        return [f"config key {key}.path: {path!r} is not a hub id (owner/name)"]
    if src == "package":
        from core.models import PACKAGED_MODELS, packaged_model_available

        if path not in PACKAGED_MODELS:
            known = sorted(PACKAGED_MODELS)
            return [f"config key {key}.path: unknown packaged model {path!r} (known: {known})"]
        ok, why = packaged_model_available(path)
        if not ok:
            return [f"config key {key}.path: packaged model {path!r} is not available: {why}"]
    return []


def raw_datasets(cfg: dict) -> list[str]:
    """Names of data/raw/<name>.parquet this config can produce."""
    if cfg["data"]["kind"] == "synthetic":
        return list(WORLD_DATASETS)
    return list(cfg["data"]["sources"])


def _model_problems(cfg: dict) -> list[str]:
    out = []
    models = cfg["models"]
    for role in [r for r in ("policy", "reward", "ppo_reward") if r in models]:
        out += _check_model(f"models.{role}", models[role])
        if models[role]["source"] == "build" and cfg["data"]["kind"] != "synthetic":
            out.append(
                f"config key models.{role}.source: 'build' trains a tokenizer on the synthetic "
                "world's corpus, so it needs data.kind: synthetic"
            )
    if models["policy"]["source"] == "sft":
        out.append("config key models.policy.source: 'sft' is for reward models (the policy is what SFT trains)")
    if "pretrain" in cfg and (cfg["data"]["kind"] != "synthetic" or models["policy"]["source"] != "build"):
        out.append(
            "config key pretrain: pretraining runs on the synthetic world's corpus from a built policy, "
            "so it needs data.kind: synthetic and models.policy.source: build"
        )
    ppo_rm, pol = models.get("ppo_reward", models["reward"]), models["policy"]
    if ppo_rm["source"] == "sft":  # the SFT policy's backbone: the policy's tokenizer
        ppo_rm = pol
    same_tokenizer = (ppo_rm["source"] == pol["source"] == "build") or (
        ppo_rm["source"] == pol["source"] and ppo_rm.get("path") == pol.get("path")
    )
    if not same_tokenizer:
        out.append(
            "config key models.ppo_reward: PPO scores the policy's tokens with its reward model, so "
            "that model needs the policy's tokenizer; models.reward differs from models.policy, so "
            "set models.ppo_reward to a reward-model spec on the policy's backbone"
        )
    return out


def _data_problems(cfg: dict) -> list[str]:
    out, raw = [], raw_datasets(cfg)
    if cfg["data"]["kind"] == "real":
        if "pool" not in cfg["data"]["sources"]:
            out.append("config key data.sources.pool: required when data.kind is 'real' (the DR training pool)")
        for name, spec in cfg["data"]["sources"].items():
            src = spec["source"]
            if src.startswith("bigbench:"):
                continue
            looks_local = src.startswith((".", "/", "~")) or os.path.splitext(src)[1] in LOCAL_SUFFIXES
            if looks_local and not Path(os.path.expanduser(src)).exists():
                out.append(f"config key data.sources.{name}.source: local path {src!r} does not exist")
    for key, name in (("sft.dataset", cfg["sft"]["dataset"]), ("distill.data", cfg["distill"]["data"])):
        if name not in raw:
            out.append(f"config key {key}: unknown dataset {name!r} (available: {raw})")
    for bench, spec in cfg["eval"]["benchmarks"].items():
        if spec["data"] not in raw:
            out.append(f"config key eval.benchmarks.{bench}.data: unknown dataset {spec['data']!r} (available: {raw})")
    variants = cfg["data"]["variants"]
    refs = [
        ("dr.ppo.variant", cfg["dr"]["ppo"]["variant"]),
        ("dr.dpo.variant", cfg["dr"]["dpo"]["variant"]),
        ("report.rm_variant", cfg["report"]["rm_variant"]),
    ]
    refs += [(f"report.subset_tables.{t}", v[0]) for t, v in cfg["report"]["subset_tables"].items()]
    refs += [(f"dr.reward.grids.{v}", v) for v in cfg["dr"]["reward"]["grids"]]
    for key, variant in refs:
        if variant not in variants:
            out.append(f"config key {key}: unknown variant {variant!r} (data.variants has {sorted(variants)})")
    return out


def _benchmark_problems(cfg: dict) -> list[str]:
    """RewardBench 2 is scored record by record (core.eval.rewardbench2): only the benchmark named
    ``rewardbench2`` has kind ``rewardbench2``, its data are loaded with format ``reward-bench-2`` (the
    pairs carry their record's id) and its ``subset_map`` targets its six subsets."""
    out = []
    for bench, spec in cfg["eval"]["benchmarks"].items():
        key = f"config key eval.benchmarks.{bench}"
        if (bench == "rewardbench2") != (spec["kind"] == "rewardbench2"):
            out.append(f"{key}.kind: kind 'rewardbench2' belongs to the benchmark named rewardbench2 (and only it)")
            continue
        if bench != "rewardbench2":
            continue
        source = cfg["data"]["sources"].get(spec["data"]) if cfg["data"]["kind"] == "real" else None
        if source is None or source["format"] != "reward-bench-2":
            got = f"format {source['format']!r}" if source else "no data.sources entry of a real config"
            out.append(f"{key}.data: RewardBench 2 needs a dataset loaded with format 'reward-bench-2', got {got}")
        bad = sorted(set((spec.get("subset_map") or {}).values()) - set(REWARDBENCH2_SUBSETS))
        if bad:
            out.append(f"{key}.subset_map: targets {bad} are not RewardBench 2 subsets {list(REWARDBENCH2_SUBSETS)}")
    return out


def _grid_problems(cfg: dict) -> list[str]:
    out = []
    cvar_lists = [(f"dr.reward.grids.{v}.cvar", g.get("cvar", [])) for v, g in cfg["dr"]["reward"]["grids"].items()]
    cvar_lists += [(f"dr.{k}.rho", cfg["dr"][k]["rho"]) for k in ("ppo", "dpo") if cfg["dr"][k]["divergence"] == "cvar"]
    for key, values in cvar_lists:
        if any(r > 1 for r in values):
            out.append(f"config key {key}: cvar reads rho as alpha, which must be <= 1")
    d = cfg["distill"]
    n, n_ens = d["n_train"], d["ensemble_n"]
    for bias in d["biases"]:
        longer = math.floor(bias * n + 0.5)
        for b in d["ensemble_b"]:
            k = math.floor(b * n_ens + 0.5)
            if k > longer or n_ens - k > n - longer:
                out.append(
                    f"config key distill.ensemble_n: {n_ens} pairs with longer-preferred fraction {b} "
                    f"cannot be drawn from D_bias (bias={bias}, {n} pairs: {longer} longer-preferred)"
                )
    b1 = cfg["report"]["figureB1"]
    if b1["bias"] not in d["biases"]:
        out.append(f"config key report.figureB1.bias: {b1['bias']} is not in distill.biases")
    if b1["beta"] not in d["beta"]:
        out.append(f"config key report.figureB1.beta: {b1['beta']} is not in distill.beta")
    return out


def _resource_problems(cfg: dict) -> list[str]:
    out = []
    for kind, r in cfg["resources"].items():
        if not isinstance(r, dict):  # a run-wide setting (warm_start), not a kind of job
            continue
        gpu, nproc = r.get("gpu", 0), r.get("nproc", 1)
        if kind != "train" and nproc != 1:
            out.append(
                f"config key resources.{kind}.nproc: only training jobs run in several processes "
                f"(resources.train.nproc); expected 1, got {nproc}"
            )
        if gpu and nproc > gpu:
            out.append(
                f"config key resources.{kind}.nproc: {nproc} processes need one GPU each, "
                f"but resources.{kind}.gpu is {gpu}"
            )
    return out


#: the train blocks of the DPO family (the only ones whose trainer config has DPO's own fields)
DPO_TRAIN_BLOCKS = ("dr.dpo.train", "distill.policy.train")
DPO_ONLY_FIELDS = ("precompute_ref_log_probs",)


def _train_block_problems(cfg: dict) -> list[str]:
    """DPO-only training fields in a train block of another trainer (its config would refuse them)."""
    out = []
    for key in ("pretrain.train", "sft.train", "dr.reward.train", "distill.reward.train", "distill.oracle.train"):
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        for field in DPO_ONLY_FIELDS:
            if isinstance(node, dict) and field in node:
                allowed = " and ".join(DPO_TRAIN_BLOCKS)
                out.append(f"config key {key}.{field}: a DPO-family setting; allowed in {allowed}")
    return out


#: keys whose values are DR radii: the reward-model grids and the PPO / DPO rho lists
RHO_KEY = re.compile(r"^dr\.(reward\.grids\.[^.]+\.(tv|chi2|kl|cvar)|ppo\.rho|dpo\.rho)\[[0-9]+\]$")


def _numbers(value: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """Every float of the config with its key path (``dr.reward.grids.unfiltered.tv[1]``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(value, float):
        yield key, value


def _finite_problems(cfg: dict) -> list[str]:
    """Every number finite: YAML's ``.inf``/``.nan`` pass the schema's ``type: number`` (and nan
    every ``minimum``), then crash a later step or silently vanish from a grid."""
    out = []
    for key, value in _numbers(cfg):
        if not math.isfinite(value):
            what = "rho must be a finite number >= 0" if RHO_KEY.match(key) else "expected a finite number"
            out.append(f"config key {key}: {what}, got {value}")
    return out


def semantic_problems(cfg: dict) -> list[str]:
    """Cross-key checks: finite numbers first (the other checks compute with them), then model
    paths, dataset names, variant references, grid ranges, resources."""
    finite = _finite_problems(cfg)
    if finite:
        return finite
    return (
        _model_problems(cfg)
        + _data_problems(cfg)
        + _benchmark_problems(cfg)
        + _grid_problems(cfg)
        + _resource_problems(cfg)
        + _train_block_problems(cfg)
    )
