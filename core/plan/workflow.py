"""The workflow's view of one config: where every file goes (core.plan.paths), the grids
(core.plan.grids), and what each rule needs (resources, params, base models, inputs).

The ``.smk`` files build one ``Pipeline(config)`` and call its methods; nothing here knows
about Snakemake's objects, so it is unit-tested like the rest of ``core``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.plan.config import validate_config
from core.plan.grids import VALIDATION, Grids
from core.plan.paths import MATERIALISED_SOURCES, RMSET_ROLE, Paths, seed_entry
from core.vocab import DISTILLED_LOSS_TYPES, PESSIMISTIC_LOSS_TYPES

RESULTS = "results"


def by_attempt(base: int, cap: int | None = None) -> Callable[..., int]:
    """A Snakemake resource value that grows with the try: ``base`` times ``attempt`` (1 on the first
    try, 2 on the retry of ``--retries 1``), so a job killed for memory or time asks for twice as
    much when it is resubmitted, never more than ``cap`` (a partition's time limit). Snakemake calls
    it with the job's wildcards and ``attempt``; the config's number is ``.base``."""

    def value(wildcards: Any = None, attempt: int = 1) -> int:
        grown = int(base) * int(attempt)
        return grown if cap is None else min(grown, int(cap))

    value.base = int(base)  # type: ignore[attr-defined]
    value.__name__ = value.__qualname__ = f"by_attempt({int(base)})" if cap is None else f"by_attempt({base}, {cap})"
    return value


class Pipeline(Grids):
    """Grids, paths and rule helpers of one config (validated, defaults filled, on creation)."""

    def __init__(self, cfg: dict, results: str = RESULTS) -> None:
        validate_config(cfg)
        super().__init__(cfg)
        self.root = f"{results}/{cfg['name']}"
        self.paths = Paths(self.root)
        self._specs: Any = None

    @property
    def specs(self) -> Any:
        """The table, figure and report specs (core.plan.specs), built once."""
        if self._specs is None:
            from core.plan.specs import Specs

            self._specs = Specs(self)
        return self._specs

    # ------------------------------------------------------------------- resources
    def threads(self, kind: str) -> int:
        """Cores a job of ``kind`` occupies: ``threads`` per process times ``nproc`` processes."""
        r = self.cfg["resources"][kind]
        return r["threads"] * r.get("nproc", 1)

    def resources(self, kind: str, seeds: int = 1) -> dict[str, Any]:
        """Scheduler resources of a job: memory and CPUs scale with its processes (``nproc``), its
        runtime with the number of seeds it runs one after another (:meth:`per_seed`). ``mem_mb``
        and ``runtime`` are :func:`by_attempt` callables: a retried job (``retries`` in the
        profiles) gets ``attempt`` times the config's memory and time (rules' resources override
        a profile's ``default-resources``, so the scaling has to be here)."""
        r, cap = self.cfg["resources"][kind], self.cfg["resources"].get("max_runtime")
        runtime = r["runtime"] * seeds if cap is None else min(r["runtime"] * seeds, cap)
        out = {"mem_mb": by_attempt(r["mem_mb"] * r.get("nproc", 1)), "runtime": by_attempt(runtime, cap),
               "cpus_per_task": self.threads(kind)}  # fmt: skip
        if r.get("gpu", 0):
            out["gpu"] = r["gpu"]
            if self.cfg["resources"].get("gpu_partition"):  # SLURM: every GPU job to the GPU partition
                out["slurm_partition"] = self.cfg["resources"]["gpu_partition"]
        return out

    def conda_env(self, kind: str) -> str:
        """The conda environment of a rule (used with --software-deployment-method conda)."""
        return "../envs/gpu.yaml" if self.cfg["resources"][kind].get("gpu", 0) > 0 else "../envs/cpu.yaml"

    def job(self, kind: str) -> dict[str, int]:
        """Launch settings every script gets: processes, GPUs and the training forward's length
        buckets."""
        r = self.cfg["resources"][kind]
        return {"nproc": r.get("nproc", 1), "gpu": r.get("gpu", 0), "length_buckets": r.get("length_buckets", 1)}

    def per_seed(self, entries: Any) -> dict[str, Any]:
        """Inputs or outputs of a job over every seed of the config (all seeds of a grid point in
        one process: core.jobs.job.Job.per_seed): ``entries(seed) -> {name: path}`` becomes
        ``{<name>_seed<N>: path}``."""
        return {seed_entry(k, s): v for s in self.seeds() for k, v in entries(s).items()}

    def seeded_resources(self, kind: str) -> dict[str, Any]:
        """:meth:`resources` of a job over every seed of the config."""
        return self.resources(kind, seeds=len(self.seeds()))

    def tracking(self) -> dict[str, str]:
        return {"uri": self.cfg["tracking"]["uri"], "experiment": self.cfg["name"]}

    def control(self, kind: str) -> dict[str, Any]:
        """The params every job gets besides its own: launch settings and MLflow tracking; with hub
        models, ``hub_offline``: the job runs with ``HF_HUB_OFFLINE=1`` on what ``prefetch`` fetched."""
        out = {"job": self.job(kind), "tracking": self.tracking()}
        return {**out, "hub_offline": True} if self.hub_models() else out

    # ----------------------------------------------------------------------- hub
    def hub_models(self) -> list[str]:
        """Every hub model id the config names (``models.<role>.source: hub``), for ``prefetch``."""
        models = [m for m in self.cfg["models"].values() if isinstance(m, dict)]
        return sorted({m["path"] for m in models if m.get("source") == "hub"})

    def hub_input(self) -> list[str]:
        """``prefetch``'s record as an input of every rule that loads a hub model (none without one)."""
        return [self.paths.prefetch()] if self.hub_models() else []

    # -------------------------------------------------------------------- models
    def materialised(self, role: str) -> bool:
        return self.cfg["models"][role]["source"] in MATERIALISED_SOURCES

    def from_sft(self, role: str) -> bool:
        """``role`` starts from the workflow's SFT policy (a reward model with a new scalar head)."""
        return self.cfg["models"][role]["source"] == "sft"

    def base_model_input(self, role: str) -> list[str]:
        """The workflow-made base-model folder of ``role`` as an input (materialised, or the SFT
        policy), or nothing (hub/local)."""
        if self.from_sft(role):
            return [self.paths.model("sft")]
        return [self.paths.model(f"base/{role}")] if self.materialised(role) else []

    def base_model_ref(self, role: str) -> str | None:
        """A hub id or local path of ``role``'s base model, None when it is an input file."""
        return None if self.materialised(role) or self.from_sft(role) else self.cfg["models"][role]["path"]

    def base_model(self, role: str) -> str:
        return (self.base_model_input(role) or [self.cfg["models"][role]["path"]])[0]

    def sft_base_input(self) -> list[str]:
        """What SFT starts from: the pretrained backbone (``pretrain``), else the policy's base."""
        return [self.paths.model("pretrained")] if "pretrain" in self.cfg else self.base_model_input("policy")

    def sft_base_ref(self) -> str | None:
        return None if "pretrain" in self.cfg else self.base_model_ref("policy")

    def reference_input(self, which: str) -> list[str]:
        """pi_ref of the DR ('dr') or distillation ('distill') experiments: SFT or the base LM."""
        if self.cfg[which]["reference"] == "sft":
            return [self.paths.model("sft")]
        return self.base_model_input("policy")

    def reference_ref(self, which: str) -> str | None:
        return None if self.cfg[which]["reference"] == "sft" else self.base_model_ref("policy")

    def reference_policy(self, which: str) -> str:
        return self.paths.model("sft") if self.cfg[which]["reference"] == "sft" else self.base_model("policy")

    def rm_role(self, rmset: str) -> str:
        return RMSET_ROLE[rmset]

    def ppo_rmset(self) -> str:
        """PPO's reward models need the policy's tokenizer: models.ppo_reward when it is set."""
        return "rm_ppo" if "ppo_reward" in self.cfg["models"] else "rm"

    def ppo_reward_dir(self, variant: str, div: str, rho: str, seed: str) -> str:
        """The reward model of a PPO run (relative to models/): same divergence and rho as the
        run (DR paper §5.2); the BTL model for standard PPO."""
        v, d, r = self.rm_key(variant, div, float(rho))
        return self.paths.rm(v, d, r, seed, self.ppo_rmset())

    def ppo_reward_inputs(self, variant: str, div: str, rho: str) -> dict[str, str]:
        """Every seed's reward model and its metrics file of a PPO grid point (``reward_seed<N>``,
        ``reward_metrics_seed<N>``)."""

        def one(seed: int) -> dict[str, str]:
            rel = self.ppo_reward_dir(variant, div, rho, str(seed))
            return {"reward": self.paths.model(rel), "reward_metrics": self.paths.metrics(rel, "train")}

        return self.per_seed(one)

    def oracle_input(self) -> str:
        """The oracle: the world's exact reward (embedded default) or a trained oracle RM."""
        if self.cfg["distill"]["oracle"]["kind"] == "exact":
            return self.paths.world_file("oracle.json")
        return self.paths.model("oracle")

    # ----------------------------------------------------------------- params
    def train_params(self, section: dict, **extra: Any) -> dict[str, Any]:
        """A training job's params: its config slice (a rerun trigger), launch, tracking, and how
        many validation pairs its learning curve is measured on (``eval.curve_pairs``)."""
        return {"train": section["train"], "curve_pairs": self.cfg["eval"]["curve_pairs"], **self.control("train"),
                **extra}  # fmt: skip

    def subsample_n(self, purpose: str) -> int:
        return self.cfg["dr"][{"rm": "reward", "ppo": "ppo", "dpo": "dpo"}[purpose]]["n_train"]

    def dr_dpo_loss(self, div: str, rho: str) -> dict[str, Any]:
        """DRDPOConfig fields of a DPO / DR-DPO run (DR paper Alg. 3)."""
        return {"loss_type": "dpo", "beta": self.cfg["dr"]["dpo"]["beta"], "divergence": div, "rho": float(rho)}

    def distill_loss(self, method: str, beta: str, gamma: str) -> dict[str, Any]:
        """DRDPOConfig fields of one distillation policy: beta (tau for IPO), the gamma schedule
        of the pessimistic losses, their forward-KL estimator (distillation paper eqs. 7-13)."""
        d, g = self.cfg["distill"], self.cfg["distill"]["gamma"]
        loss: dict[str, Any] = {"loss_type": method, "beta": float(beta), "divergence": "none", "rho": 0.0}
        if gamma == "linear":
            loss.update(gamma_schedule="linear", gamma_start=g["start"], gamma_end=g["end"])
        elif gamma == "constant":
            loss.update(gamma_schedule="constant", gamma=g["constant"])
        if method in PESSIMISTIC_LOSS_TYPES:
            loss["forward_kl_estimator"] = d["kl_estimator"]
        return loss

    def distill_members(self, method: str) -> list[str]:
        """The ensemble members whose target rewards an e-DPO policy distils from."""
        return self.ensemble_members() if method == "edpo" else []

    def distill_policy_data(self, method: str, bias: str) -> str:
        """Distilling methods read D_bias with its precomputed target rewards; the others D_bias."""
        name = "targets" if method in DISTILLED_LOSS_TYPES else "train"
        return self.paths.data(self.paths.distill_data(name, bias))

    def distill_rm_data(self, bias: str, member: str) -> str:
        return self.paths.data(self.paths.distill_data("train" if member == "full" else member, bias))

    def ppo_oracle_params(self) -> dict[str, Any]:
        """What the PPO evaluation needs to judge samples by the oracle per domain: the oracle,
        generation and bootstrap settings, prompts per domain, and the out-of-distribution
        benchmark whose prompts it samples on (the first of RewardBench / HHH / MT-Bench here)."""
        ood = [b for b in self.pairwise_benchmarks() if b != "id"]
        spec = {"n_per_domain": self.cfg["eval"]["oracle_prompts_per_domain"], "ood": ood[0] if ood else "id"}
        return {**self.oracle_eval_params(), "oracle_domains": spec}

    def oracle_eval_params(self) -> dict[str, Any]:
        e = self.cfg["eval"]
        return {
            "oracle": self.cfg["distill"]["oracle"],
            "generation": e["generation"],
            "n_prompts": e["n_prompts"],
            "bootstrap": e["bootstrap"],
        }

    # -------------------------------------------------------------- benchmarks
    def benchmark_data(self, bench: str, variant: str) -> str:
        if bench in ("id", VALIDATION):
            return self.paths.data(self.paths.dr_data(variant, "test" if bench == "id" else "val"))
        return self.paths.raw(self.cfg["eval"]["benchmarks"][bench]["data"])

    def bench_inputs(self, variant: str) -> dict[str, str]:
        """The data file of every benchmark a DR model is scored on ('id' = the variant's test split)."""
        return {b: self.benchmark_data(b, variant) for b in self.eval_benchmarks()}

    def bench_outputs(self, rel: str) -> dict[str, str]:
        return {b: self.paths.metrics(rel, b) for b in self.eval_benchmarks()}

    def bench_specs(self) -> dict[str, dict]:
        return {b: self.benchmark_spec(b) for b in self.eval_benchmarks()}

    def reference_inputs(self, variant: str) -> dict[str, str]:
        """The benchmark files of a variant's reference rows, and the exact oracle if they use it."""
        out = {b: self.benchmark_data(b, variant) for b in self.dr_benchmarks()}
        return {**out, "oracle": self.oracle_input()} if "oracle" in self.reference_rules() else out

    def reference_outputs(self, variant: str) -> dict[str, str]:
        """The reference rows' metrics files of one variant's benchmarks: ``<rule>_<bench>``."""
        return {f"{rule}_{b}": self.paths.metrics(self.paths.reference(variant, rule), b)
                for rule in self.reference_rules() for b in self.dr_benchmarks()}  # fmt: skip

    def raw_outputs(self) -> dict[str, str]:
        """The synthetic world's outputs: every raw dataset, its corpus and its exact oracle."""
        from core.plan.paths import WORLD_DATASETS

        out = {name: self.paths.raw(name) for name in WORLD_DATASETS}
        return {**out, "corpus": self.paths.world_file("corpus.jsonl"), "oracle": self.paths.world_file("oracle.json"),
                "pretrain_corpus": self.paths.world_file("pretrain_corpus.jsonl")}  # fmt: skip
