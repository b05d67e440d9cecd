# Reward models (docs/design.md §1.2): BTL and DR reward models of the DR paper (Algorithm 1),
# the distillation paper's oracle RM, its r_bias and ensemble r_{bias,b}, and the offline target
# rewards that d-DPO / dp-DPO / e-DPO distil from.

NO_DR = {"divergence": "none", "rho": 0.0, "average_iterates": "none"}


rule train_rm_dr:
    """BTL (rho = 0) or DR reward model with worst-case minibatch weights in a `div` ball of
    radius rho (DR paper Algorithm 1) on a variant of the preference pool, for every seed in one
    process. rmset 'rm' starts from models.reward (the reward-model tables), 'rm_ppo' from
    models.ppo_reward (PPO's reward models, when the policy's tokenizer differs from models.reward's)."""
    input:
        hub=P.hub_input(),
        data=PATHS.data(PATHS.dr_data("{variant}", "sub_rm")),
        val=PATHS.data(PATHS.dr_data("{variant}", "val")),
        base=rm_base,
    output:
        **P.per_seed(lambda s: {
            "model": directory(PATHS.model(PATHS.rm("{variant}", "{div}", "{rho}", s, "{rmset}"))),
            "metrics": PATHS.metrics(PATHS.rm("{variant}", "{div}", "{rho}", s, "{rmset}"), "train")}),
    params:
        **P.train_params(
            config["dr"]["reward"],
            base=lambda wc: P.base_model_ref(P.rm_role(wc.rmset)),
            model_spec=lambda wc: config["models"][P.rm_role(wc.rmset)],
            dr=lambda wc: {"divergence": wc.div, "rho": float(wc.rho),
                           "average_iterates": config["dr"]["reward"]["average_iterates"]},
            seeds=P.seeds(),
        ),
    log:
        PATHS.log(PATHS.rm("{variant}", "{div}", "{rho}", "s", "{rmset}")),
    threads: P.threads("train")
    resources:
        **P.seeded_resources("train"),
    conda:
        P.conda_env("train")
    script:
        "../workflow_scripts/train_reward.py"


if config["distill"]["oracle"]["kind"] == "model":

    rule train_oracle_rm:
        """The distillation paper's oracle RM: trained on the full preference set (§6.1)."""
        input:
            hub=P.hub_input(),
            data=PATHS.raw(config["distill"]["data"]),
            base=P.base_model_input("reward"),
        output:
            model=directory(PATHS.model("oracle")),
            metrics=PATHS.metrics("oracle", "train"),
        params:
            **P.train_params(config["distill"]["oracle"], base=P.base_model_ref("reward"),
                             model_spec=config["models"]["reward"], dr=NO_DR, seed=config["seed"]),
        log:
            PATHS.log("oracle/train"),
        threads: P.threads("train")
        resources:
            **P.resources("train"),
        conda:
            P.conda_env("train")
        script:
            "../workflow_scripts/train_reward.py"


rule train_distill_rm:
    """r_bias on D_bias ("full", for d-DPO / dp-DPO) or r_{bias,b} on D_{bias,b} (e-DPO's ensemble)."""
    input:
        hub=P.hub_input(),
        data=lambda wc: P.distill_rm_data(wc.bias, wc.member),
        base=P.base_model_input("reward"),
    output:
        model=directory(PATHS.model(PATHS.distill_rm("{bias}", "{member}"))),
        metrics=PATHS.metrics(PATHS.distill_rm("{bias}", "{member}"), "train"),
    params:
        **P.train_params(config["distill"]["reward"], base=P.base_model_ref("reward"),
                         model_spec=config["models"]["reward"], dr=NO_DR, seed=config["seed"]),
    log:
        PATHS.log(PATHS.distill_rm("{bias}", "{member}")),
    threads: P.threads("train")
    resources:
        **P.resources("train"),
    conda:
        P.conda_env("train")
    script:
        "../workflow_scripts/train_reward.py"


rule score_targets:
    """Offline target rewards r_tgt(x, y) of D_bias under r_bias and every r_{bias,b} (eq. 7, 11)."""
    input:
        data=PATHS.data(PATHS.distill_data("train", "{bias}")),
        full=PATHS.model(PATHS.distill_rm("{bias}", "full")),
        members=[PATHS.model(PATHS.distill_rm("{bias}", m)) for m in P.ensemble_members()],
    output:
        PATHS.data(PATHS.distill_data("targets", "{bias}")),
    params:
        members=P.ensemble_members(),
        eval=P.eval_settings(),
        **P.control("eval"),
    log:
        PATHS.log(PATHS.distill_rm("{bias}", "targets")),
    threads: P.threads("eval")
    resources:
        **P.resources("eval"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/score_targets.py"
