# small-real (experiment: real-text; docs/small-real.md): AlpacaEval's real GPT-4 verdicts and
# HHH, reward models on a frozen real encoder. load -> encode (the cached states every model
# reads) -> train_rm (per grid point, every seed), train_policies, train_distill (every seed) ->
# report (Table 8, Table 6, Figure 2 as a table, claims).

from core.plan.real import RealPlan

R = RealPlan(config)


rule report:
    input:
        R.claims("md"),
        R.table("md"),


rule real_load:
    """The pool (one annotator, G generators by a seeded permutation) and HHH, normalised."""
    output:
        pool=R.pairs("pool"),
        hhh=R.pairs("hhh"),
    params:
        plan=R,
    log:
        R.log("data/load"),
    script:
        "../workflow_scripts/real_load.py"


rule real_encode:
    """Every unique (instruction, response) through the frozen encoder, once."""
    input:
        pool=R.pairs("pool"),
        hhh=R.pairs("hhh"),
    output:
        **R.states(),
    params:
        plan=R,
    log:
        R.log("states/encode"),
    threads: int(config["encoder"].get("threads", 1))
    script:
        "../workflow_scripts/real_encode.py"


rule real_train_rm:
    """BTL (rho = 0) or DR reward-model heads of one grid point, every seed (DR paper Alg. 1)."""
    input:
        pool=R.pairs("pool"),
        hhh=R.pairs("hhh"),
        **R.states(),
    output:
        metrics=[R.metrics("{variant}", "{div}", "{rho}", s) for s in R.seeds()],
        models=[directory(R.model("{variant}", "{div}", "{rho}", s)) for s in R.seeds()],
    params:
        plan=R,
        seeds=R.seeds(),
    log:
        R.log("rm/{variant}/{div}/rho{rho}"),
    threads: int(config["encoder"].get("threads", 1))
    script:
        "../workflow_scripts/real_train_rm.py"


rule real_train_policies:
    """Log-linear policies (DPO, DR-DPO, IPO, cDPO, rDPO) on the real candidates, every seed."""
    input:
        pool=R.pairs("pool"),
        hhh=R.pairs("hhh"),
        **R.states(),
    output:
        [R.policy_metrics(s) for s in R.seeds()],
    params:
        plan=R,
        seeds=R.seeds(),
    log:
        R.log("policy/train"),
    threads: int(config["encoder"].get("threads", 1))
    script:
        "../workflow_scripts/real_train_policies.py"


rule real_train_distill:
    """d-, p-, e-DPO, DPO and IPO on length-biased subsets of the verdicts, with their reward models, every seed."""
    input:
        pool=R.pairs("pool"),
        hhh=R.pairs("hhh"),
        **R.states(),
    output:
        [R.distill_metrics(s) for s in R.seeds()],
    params:
        plan=R,
        seeds=R.seeds(),
    log:
        R.log("distill/train"),
    threads: int(config["encoder"].get("threads", 1))
    script:
        "../workflow_scripts/real_train_distill.py"


rule real_report:
    """Table 8 and the claims table (with the gate rm_beyond_length), from the metrics files."""
    input:
        rms=R.all_metrics(),
        policies=[R.policy_metrics(s) for s in R.seeds()] if "policy" in config else [],
        distill=[R.distill_metrics(s) for s in R.seeds()] if "distill" in config else [],
    output:
        table_csv=R.table("csv"),
        table_md=R.table("md"),
        claims_csv=R.claims("csv"),
        claims_md=R.claims("md"),
        **({"table6_csv": R.table("csv", 6), "table6_md": R.table("md", 6)} if "policy" in config else {}),
        **({"figure2_csv": R.figure2("csv"), "figure2_md": R.figure2("md")} if "distill" in config else {}),
    params:
        rm_variant=config["reward"].get("rm_variant", "unfiltered"),
        probe=config["distill"]["probe"] if "distill" in config else None,
    log:
        R.log("report/claims"),
    script:
        "../workflow_scripts/real_report.py"
