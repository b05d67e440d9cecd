# Policies (docs/design.md §1.3): the SFT reference policy, PPO / DR-PPO (vA, vB) against the DR
# paper's reward models, DPO / DR-DPO (Algorithm 3), and the distillation paper's DPO, IPO,
# d-DPO, p-DPO, dp-DPO and e-DPO. Loss settings reach the trainers in their own words.


if "pretrain" in config:

    rule pretrain:
        """The backbone: causal-LM pretraining of the built policy on the world's pretraining corpus
        (the only training from random weights; SFT and, through it, the reward models start here)."""
        priority: 1
        input:
            data=PATHS.world_file("pretrain_corpus.jsonl"),
            base=P.base_model_input("policy"),
        output:
            model=directory(PATHS.model("pretrained")),
            metrics=PATHS.metrics("pretrained", "train"),
        params:
            **P.train_params(config["pretrain"], base=None, model_spec=config["models"]["policy"],
                             seed=config["seed"]),
        log:
            PATHS.log("pretrain"),
        threads: P.threads("train")
        resources:
            **P.resources("train"),
        conda:
            P.conda_env("train")
        script:
            "../workflow_scripts/train_sft.py"


rule sft:
    """The reference policy pi_ref: supervised fine-tuning of the base (or pretrained) LM on
    demonstrations."""
    priority: 1
    input:
        hub=P.hub_input(),
        data=PATHS.raw(config["sft"]["dataset"]),
        base=P.sft_base_input(),
    output:
        model=directory(PATHS.model("sft")),
        metrics=PATHS.metrics("sft", "train"),
    params:
        **P.train_params(config["sft"], base=P.sft_base_ref(), model_spec=config["models"]["policy"],
                         seed=config["seed"]),
    log:
        PATHS.log("sft"),
    threads: P.threads("train")
    resources:
        **P.resources("train"),
    conda:
        P.conda_env("train")
    script:
        "../workflow_scripts/train_sft.py"


rule train_ppo:
    """PPO (version none, rho = 0) or DR-PPO: worst-case weights over the rollout batch of
    r - beta log(pi/pi_ref), scaling rewards/advantages (vA) or the policy loss (vB)."""
    input:
        unpack(ppo_rewards),
        hub=P.hub_input(),
        data=PATHS.data(PATHS.dr_data("{variant}", "sub_ppo")),
        reference=P.reference_input("dr"),
    output:
        **P.per_seed(lambda s: {
            "model": directory(PATHS.model(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", s))),
            "metrics": PATHS.metrics(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", s), "train")}),
    params:
        **P.train_params(
            config["dr"]["ppo"],
            reference=P.reference_ref("dr"),
            model_spec=config["models"]["policy"],
            dr=lambda wc: {"robust_version": wc.version, "divergence": wc.div, "rho": float(wc.rho)},
            seeds=P.seeds(),
        ),
    log:
        PATHS.log(PATHS.ppo("{variant}", "{version}", "{div}", "{rho}", "s")),
    threads: P.threads("train")
    resources:
        **P.seeded_resources("train"),
    conda:
        P.conda_env("train")
    script:
        "../workflow_scripts/train_ppo.py"


rule train_dpo_dr:
    """DPO (rho = 0) or DR-DPO: the DPO per-example loss reweighted by q* (DR paper Alg. 3)."""
    input:
        hub=P.hub_input(),
        data=PATHS.data(PATHS.dr_data("{variant}", "sub_dpo")),
        val=PATHS.data(PATHS.dr_data("{variant}", "val")),
        reference=P.reference_input("dr"),
    output:
        **P.per_seed(lambda s: {
            "model": directory(PATHS.model(PATHS.dpo("{variant}", "{div}", "{rho}", s))),
            "metrics": PATHS.metrics(PATHS.dpo("{variant}", "{div}", "{rho}", s), "train")}),
    params:
        **P.train_params(
            config["dr"]["dpo"],
            reference=P.reference_ref("dr"),
            model_spec=config["models"]["policy"],
            loss=lambda wc: P.dr_dpo_loss(wc.div, wc.rho),
            seeds=P.seeds(),
        ),
    log:
        PATHS.log(PATHS.dpo("{variant}", "{div}", "{rho}", "s")),
    threads: P.threads("train")
    resources:
        **P.seeded_resources("train"),
    conda:
        P.conda_env("train")
    script:
        "../workflow_scripts/train_dpo.py"


rule train_distill_policy:
    """One policy of the distillation paper's grid (method x length bias x beta x gamma), and its
    oracle-reward advantage over SFT on the validation prompts (model selection, Figure B.4) and
    test prompts (Figure 2) with bootstrap 95% intervals, scored in the same job."""
    input:
        hub=P.hub_input(),
        data=lambda wc: P.distill_policy_data(wc.method, wc.bias),
        reference=P.reference_input("distill"),
        probes=PATHS.data(PATHS.distill_data("val")),
        val=PATHS.data(PATHS.distill_data("val")),
        test=PATHS.data(PATHS.distill_data("test")),
        sft_val=PATHS.metrics("distill/sft", "oracle_val"),
        sft_test=PATHS.metrics("distill/sft", "oracle_test"),
        oracle=P.oracle_input(),
    output:
        **P.per_seed(lambda s: {
            "model": directory(PATHS.model(PATHS.distill("{method}", "{bias}", "{beta}", "{gamma}", s))),
            **{name: PATHS.metrics(PATHS.distill("{method}", "{bias}", "{beta}", "{gamma}", s), leaf)
               for name, leaf in (("metrics", "train"), ("oracle_val", "oracle_val"), ("oracle_test", "oracle_test"))}}),
    params:
        **P.train_params(
            config["distill"]["policy"],
            reference=P.reference_ref("distill"),
            model_spec=config["models"]["policy"],
            loss=lambda wc: P.distill_loss(wc.method, wc.beta, wc.gamma),
            members=lambda wc: P.distill_members(wc.method),
            probes=config["distill"]["probes"],
            seeds=P.seeds(),
            eval=P.eval_settings(),
            **P.oracle_eval_params(),
        ),
    log:
        PATHS.log(PATHS.distill("{method}", "{bias}", "{beta}", "{gamma}", "s")),
    threads: P.threads("train")
    resources:
        **P.seeded_resources("train"),
    conda:
        P.conda_env("train")
    script:
        "../workflow_scripts/train_dpo.py"
