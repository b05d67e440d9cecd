"""The path scheme of every workflow artifact: one function per kind of file, used by the rules
(with ``"{wildcard}"`` placeholders) and by the table specs (with grid values) alike.

Everything lives under ``results/<config name>/`` (docs/design.md §5), so configs never overwrite
or mix each other's files; numbers inside paths are written by :func:`fmt`.
"""

from __future__ import annotations

import re

from core.vocab import BENCHMARKS, DIVERGENCES, GAMMA_SCHEDULES, LOSS_TYPES, NO_GAMMA, PPO_VERSIONS

#: a grid value inside a path (what :func:`fmt` writes)
NUM = r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?"
#: raw datasets the synthetic world writes (data/raw/<name>.parquet) -> generate_world split
WORLD_DATASETS = {"pool": "train", "world_test": "test", "world_eval": "eval", "sft": "sft", "prompts": "prompts"}
#: model sets of the DR reward-model grid -> the models.<role> they start from
RMSET_ROLE = {"rm": "reward", "rm_ppo": "ppo_reward"}
#: roles whose base model the workflow materialises under models/base/<role>
MATERIALISED_SOURCES = ("build", "gguf", "package")


def _alt(words) -> str:
    return "|".join(words)


#: Snakemake wildcard constraints of the path scheme (the vocabulary's words, nothing else).
WILDCARD_CONSTRAINTS = {
    "seed": r"[0-9]+",
    "rho": NUM,
    "bias": NUM,
    "beta": NUM,
    "variant": r"[A-Za-z0-9_-]+",
    "div": _alt(DIVERGENCES),
    "version": _alt(PPO_VERSIONS),
    "method": _alt(LOSS_TYPES),
    "gamma": _alt((NO_GAMMA, *GAMMA_SCHEDULES)),
    "rmset": _alt(RMSET_ROLE),
    "member": r"full|ens" + NUM,
    "bench": _alt(BENCHMARKS),
    "split": r"train|val|test",
    "purpose": r"rm|ppo|dpo",
    "name": r"[A-Za-z0-9_]+",
    "role": r"policy|reward|ppo_reward",
    "exp": r"[a-z0-9_]+",
    "dataset": r"[A-Za-z0-9_.-]+",
}


def fmt(x: float | int | str) -> str:
    """Canonical text of a grid value inside a path: 0.1 -> '0.1', 1.0 -> '1', 1e-4 -> '0.0001'.
    A string (a ``"{wildcard}"`` placeholder or a wildcard's value) is kept as it is."""
    if isinstance(x, str):
        return x
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = repr(x)
    if "e" in text:
        text = f"{x:.12f}".rstrip("0")
    return text


class Paths:
    """Files of one config under ``root`` (``results/<config name>``)."""

    def __init__(self, root: str) -> None:
        self.root = root

    # ------------------------------------------------------------------ kinds of file
    def data(self, rel: str) -> str:
        return f"{self.root}/data/{rel}.parquet"

    def raw(self, dataset: str) -> str:
        return self.data(f"raw/{dataset}")

    def load_outputs(self, dataset: str) -> dict[str, str]:
        """What loading a raw dataset writes: the pairs, the counts (``.report.json``) and every
        dropped row's file, line and reason (``.dropped.jsonl``)."""
        data = self.raw(dataset)
        return {"data": data, "report": f"{data}.report.json", "dropped": f"{data}.dropped.jsonl"}

    def prefetch(self) -> str:
        """What ``prefetch`` downloaded once into the Hugging Face cache (hub models and their commits)."""
        return f"{self.root}/hub/prefetch.json"

    def model(self, rel: str) -> str:
        return f"{self.root}/models/{rel}"

    def metrics(self, rel: str, leaf: str) -> str:
        return f"{self.root}/metrics/{rel}/{leaf}.json"

    def log(self, rel: str, leaf: str | None = None) -> str:
        """The log of the job that writes ``rel`` (``leaf``: a second job on the same folder)."""
        return f"{self.root}/logs/{rel}/{leaf}.log" if leaf else f"{self.root}/logs/{rel}.log"

    def table(self, name: str, ext: str = "md") -> str:
        return f"{self.root}/tables/{name}.{ext}"

    def figure(self, name: str) -> str:
        return f"{self.root}/figures/{name}.png"

    def claims(self, ext: str = "md") -> str:
        """The claims table (core.report.claims): every claim's measured verdict."""
        return f"{self.root}/claims.{ext}"

    def ablation(self, ext: str = "md") -> str:
        """The label-noise ablation (core.report.ablation): ``md``, ``json``, and ``yaml`` (its noise-free config)."""
        return f"{self.root}/ablation/label_noise.{ext}"

    def report(self, ext: str = "md") -> str:
        return f"{self.root}/report.{ext}"

    def world_file(self, name: str) -> str:
        """The world's corpus (``corpus.jsonl``) and exact oracle (``oracle.json``)."""
        return f"{self.root}/data/raw/{name}"

    # ---------------------------------------------- model folders (relative to models/)
    @staticmethod
    def rm(variant, div, rho, seed, rmset="rm") -> str:
        """A DR-paper reward model (BTL at divergence none / rho 0; DR paper Alg. 1); rmset
        'rm_ppo' is the same grid point trained from models.ppo_reward (PPO's reward model)."""
        return f"dr/{rmset}/{variant}/{div}/rho{fmt(rho)}/seed{seed}"

    @staticmethod
    def ppo(variant, version, div, rho, seed) -> str:
        """PPO (version none) or DR-PPO vA / vB (DR paper §5.2)."""
        return f"dr/ppo/{variant}/{version}/{div}/rho{fmt(rho)}/seed{seed}"

    @staticmethod
    def dpo(variant, div, rho, seed) -> str:
        """DPO or DR-DPO (DR paper Alg. 3)."""
        return f"dr/dpo/{variant}/{div}/rho{fmt(rho)}/seed{seed}"

    @staticmethod
    def distill_rm(bias, member) -> str:
        """r_bias ('full', trained on D_bias) or an ensemble member r_{bias,b} ('ens<b>')."""
        return f"distill/rm/bias{fmt(bias)}/{member}"

    @staticmethod
    def distill(method, bias, beta, gamma, seed) -> str:
        """A distillation-paper policy (method x length bias x beta (tau for IPO) x gamma)."""
        return f"distill/{method}/bias{fmt(bias)}/beta{fmt(beta)}/{gamma}/seed{seed}"

    @staticmethod
    def reference(variant, rule) -> str:
        """A reference rule's scores on a variant's benchmarks (core.eval.reference)."""
        return f"reference/{variant}/{rule}"

    # ------------------------------------------------------ data files (relative to data/)
    @staticmethod
    def dr_data(variant, name) -> str:
        """DR-paper data of a variant: filtered, train, val, test, sub_<purpose>."""
        return f"dr/{variant}/{name}"

    @staticmethod
    def distill_data(name, bias=None) -> str:
        """Distillation data: relabelled/train/val/test, or per bias train/ens<b>/targets."""
        return f"distill/{name}" if bias is None else f"distill/bias{fmt(bias)}/{name}"


#: an input/output of one seed of a job over several seeds: ``<name>_seed<N>`` (core.jobs.job.Job.per_seed)
SEED_ENTRY = re.compile(r"^(?P<name>.+)_seed(?P<seed>[0-9]+)$")


def seed_entry(name: str, seed: int | str) -> str:
    """The input/output name of ``name`` for one seed of a job over several seeds."""
    return f"{name}_seed{seed}"
