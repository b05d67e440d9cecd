# Evaluation (docs/design.md §3): pairwise accuracy of reward models and policies on the
# in-distribution test split, RewardBench (official section weighting), HHH and MT-Bench;
# the SFT policy's oracle rewards (the distillation policies' advantage over it is scored inside
# their training jobs, rules/policy.smk). One evaluation job per model scores every benchmark (one metrics file each): a
# job's start-up (torch, transformers, MLflow) costs more than scoring a benchmark here.

EVAL = {"eval": P.eval_settings(), **P.control("eval")}


rule eval_rm_dr:
    """Pairwise accuracy r(x, y+) > r(x, y-) of a DR-paper reward model on every benchmark."""
    input:
        unpack(bench_inputs),
        **P.per_seed(lambda s: {"model": PATHS.model(PATHS.rm("{variant}", "{div}", "{rho}", s)),
                                "train": PATHS.metrics(PATHS.rm("{variant}", "{div}", "{rho}", s), "train")}),
    output:
        **P.per_seed(lambda s: P.bench_outputs(PATHS.rm("{variant}", "{div}", "{rho}", s))),
    params:
        **EVAL,
        kind="reward_model",
        seeds=P.seeds(),
        benches=P.bench_specs(),
    log:
        PATHS.log(PATHS.rm("{variant}", "{div}", "{rho}", "s"), "eval"),
    threads: P.threads("eval")
    resources:
        **P.seeded_resources("eval"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/eval_pairs.py"


rule eval_ppo:
    """Policy accuracy of a PPO policy on every benchmark: pi(y+|x) > pi(y-|x) (DR paper §5.2),
    plus the implicit reward against the reference policy; and the oracle reward of its samples
    per domain in and out of distribution, with the advantage over pi_ref's samples."""
    input:
        unpack(bench_inputs),
        hub=P.hub_input(),
        **P.per_seed(lambda s: {"model": PATHS.model(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", s)),
                                "train": PATHS.metrics(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", s), "train")}),
        reference=P.reference_input("dr"),
        oracle=P.oracle_input(),
    output:
        **P.per_seed(lambda s: {
            **P.bench_outputs(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", s)),
            **{f"oracle_{split}": PATHS.metrics(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", s), f"oracle_{split}")
               for split in ("id", "ood")}}),
    params:
        **EVAL,
        kind="policy",
        seeds=P.seeds(),
        reference=P.reference_ref("dr"),
        benches=P.bench_specs(),
        **P.ppo_oracle_params(),
    log:
        PATHS.log(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", "s"), "eval"),
    threads: P.threads("eval")
    resources:
        **P.seeded_resources("eval"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/eval_pairs.py"


rule eval_dpo_dr:
    """Policy accuracy of a (DR-)DPO policy on every benchmark: implicit reward beta log pi/pi_ref
    (RewardBench's DPO mode) and plain likelihood."""
    input:
        unpack(bench_inputs),
        hub=P.hub_input(),
        **P.per_seed(lambda s: {"model": PATHS.model(PATHS.dpo("{variant}", "{div}", "{rho}", s)),
                                "train": PATHS.metrics(PATHS.dpo("{variant}", "{div}", "{rho}", s), "train")}),
        reference=P.reference_input("dr"),
    output:
        **P.per_seed(lambda s: P.bench_outputs(PATHS.dpo("{variant}", "{div}", "{rho}", s))),
    params:
        **EVAL,
        kind="policy",
        seeds=P.seeds(),
        reference=P.reference_ref("dr"),
        benches=P.bench_specs(),
    log:
        PATHS.log(PATHS.dpo("{variant}", "{div}", "{rho}", "s"), "eval"),
    threads: P.threads("eval")
    resources:
        **P.seeded_resources("eval"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/eval_pairs.py"


rule sample_sft:
    """Oracle rewards of the SFT policy's samples on the validation and test prompts (the
    advantage baseline)."""
    input:
        hub=P.hub_input(),
        model=P.reference_input("distill"),
        val=PATHS.data(PATHS.distill_data("val")),
        test=PATHS.data(PATHS.distill_data("test")),
        oracle=P.oracle_input(),
    output:
        val=PATHS.metrics("distill/sft", "oracle_val"),
        test=PATHS.metrics("distill/sft", "oracle_test"),
    params:
        **EVAL,
        **P.oracle_eval_params(),
        model=P.reference_ref("distill"),
    log:
        PATHS.log("distill/sft/oracle"),
    threads: P.threads("eval")
    resources:
        **P.resources("eval"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/sample_sft.py"


rule eval_reference:
    """The reference rows of a variant's benchmark tables: 'longer response preferred', a fair
    coin, and the oracle's ceiling where the oracle is exact (core.eval.reference)."""
    input:
        unpack(reference_inputs),
    output:
        **P.reference_outputs("{variant}"),
    params:
        # no model: the light resources (no GPU reserved for rules of thumb)
        eval=P.eval_settings(),
        **P.control("light"),
        rules=P.reference_rules(),
        benches={b: P.benchmark_spec(b) for b in P.dr_benchmarks()},
    log:
        PATHS.log("reference/{variant}"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/eval_reference.py"
