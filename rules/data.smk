# Data stages (docs/design.md §2): load/normalise -> filter sources -> split -> subsample for the
# DR paper; relabel by the oracle -> split -> length-bias subsample D_bias -> ensemble subsets
# D_{bias,b} for the distillation paper. Every stage is a cached parquet file.


if config["data"]["kind"] == "synthetic":

    rule world:
        """The embedded default's synthetic world: preference sets, eval sets, SFT demonstrations."""
        priority: 1  # on the chain every model waits for (world -> tokenizer -> base -> pretrain -> SFT)
        output:
            **P.raw_outputs(),
        params:
            **light(cfg=config["data"]["world"], seed=config["seed"]),
        log:
            PATHS.log("data/world"),
        threads: P.threads("light")
        resources:
            **P.resources("light"),
        conda:
            P.conda_env("light")
        script:
            "../workflow_scripts/world.py"

    rule tokenizer:
        """A tokenizer trained on the world's corpus (core.models)."""
        priority: 1
        input:
            corpus=PATHS.world_file("corpus.jsonl"),
        output:
            directory(PATHS.model("base/tokenizer")),
        params:
            **light(cfg=config["models"]["tokenizer"]),
        log:
            PATHS.log("models/tokenizer"),
        threads: P.threads("light")
        resources:
            **P.resources("light"),
        conda:
            P.conda_env("light")
        script:
            "../workflow_scripts/build_tokenizer.py"

else:

    # a hub dataset downloads where Snakemake runs (a cluster's login node, with network access)
    localrules:
        load_dataset,

    rule load_dataset:
        """Load a hub id or local file in its native format and normalise it (core.data); the
        dropped rows (file, line, reason) go to <pairs>.dropped.jsonl, the counts to .report.json."""
        output:
            **PATHS.load_outputs("{dataset}"),
        params:
            **light(spec=lambda wc: config["data"]["sources"][wc.dataset], on_bad_rows=config["data"]["on_bad_rows"],
                    max_drop_fraction=config["data"]["max_drop_fraction"]),
        log:
            PATHS.log("data/load_{dataset}"),
        threads: P.threads("light")
        resources:
            **P.resources("light"),
        conda:
            P.conda_env("light")
        script:
            "../workflow_scripts/load_dataset.py"


rule prefetch:
    """Every hub model the config names, downloaded once into the Hugging Face cache on the machine
    Snakemake runs on (a cluster's login node: `huggingface-cli login` there for gated models);
    the jobs then load them with HF_HUB_OFFLINE=1 (no hub access on compute nodes)."""
    output:
        PATHS.prefetch(),
    params:
        models=P.hub_models(),
    log:
        PATHS.log("hub/prefetch"),
    threads: 1
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/prefetch.py"


rule base_model:
    """A base model folder: a tiny Llama built from config (embedded default) or a GGUF /
    pip-package model materialised as an ordinary HF folder (small-real)."""
    priority: 1
    input:
        tokenizer=lambda wc: [PATHS.model("base/tokenizer")] if config["models"][wc.role]["source"] == "build" else [],
    output:
        directory(PATHS.model("base/{role}")),
    params:
        **light(spec=lambda wc: config["models"][wc.role], seed=config["seed"]),
    log:
        PATHS.log("models/base_{role}"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/base_model.py"


# ------------------------------------------------------------------------------ DR paper data
rule filter_sources:
    """Drop whole sources (the DR paper's 'no hh-rlhf', 'no chatbot_arena_conversations')."""
    input:
        PATHS.raw("pool"),
    output:
        PATHS.data(PATHS.dr_data("{variant}", "filtered")),
    params:
        **light(spec=lambda wc: config["data"]["variants"][wc.variant]),
    log:
        PATHS.log("data/dr/{variant}/filter"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/filter_sources.py"


rule split_dr:
    """Deterministic train/val/test split by seed; test is the in-distribution evaluation set."""
    input:
        PATHS.data(PATHS.dr_data("{variant}", "filtered")),
    output:
        **{s: PATHS.data(PATHS.dr_data("{variant}", s)) for s in ("train", "val", "test")},
    params:
        **light(spec=config["data"]["split"]),
    log:
        PATHS.log("data/dr/{variant}/split"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/split.py"


rule subsample_dr:
    """The training subset of one experiment (400K for RMs and DPO, 5K for PPO in the paper)."""
    input:
        PATHS.data(PATHS.dr_data("{variant}", "train")),
    output:
        PATHS.data(PATHS.dr_data("{variant}", "sub_{purpose}")),
    params:
        **light(n=lambda wc: P.subsample_n(wc.purpose), seed=config["data"]["split"]["seed"]),
    log:
        PATHS.log("data/dr/{variant}/sub_{purpose}"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/subsample.py"


# ------------------------------------------------------------------ distillation paper data
rule relabel:
    """Relabel every pair with the oracle: chosen = higher oracle score, exact ties dropped."""
    input:
        data=PATHS.raw(config["distill"]["data"]),
        oracle=P.oracle_input(),
    output:
        data=PATHS.data(PATHS.distill_data("relabelled")),
        metrics=PATHS.metrics("distill", "relabel"),
    params:
        **light(oracle=config["distill"]["oracle"], eval=P.eval_settings()),
    log:
        PATHS.log("data/distill/relabel"),
    threads: P.threads("eval")
    resources:
        **P.resources("eval"),
    conda:
        P.conda_env("eval")
    script:
        "../workflow_scripts/relabel.py"


rule split_distill:
    input:
        PATHS.data(PATHS.distill_data("relabelled")),
    output:
        **{s: PATHS.data(PATHS.distill_data(s)) for s in ("train", "val", "test")},
    params:
        **light(spec=config["data"]["split"]),
    log:
        PATHS.log("data/distill/split"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/split.py"


rule bias_subsample:
    """D_bias: a training set in which the longer response is preferred in a `bias` fraction of
    pairs ("longer" = at least 10% more tokens; distillation paper §6.1)."""
    input:
        hub=P.hub_input(),
        data=PATHS.data(PATHS.distill_data("train")),
        tokenizer=P.base_model_input("policy"),
    output:
        PATHS.data(PATHS.distill_data("train", "{bias}")),
    params:
        **light(n=config["distill"]["n_train"], bias=lambda wc: float(wc.bias), seed=config["seed"],
                longer=config["distill"]["longer_threshold"], tokenizer=P.base_model_ref("policy")),
    log:
        PATHS.log("data/distill/bias{bias}/subsample"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/bias_subsample.py"


rule ensemble_subsets:
    """D_{bias,b} for every b of the ensemble: the e-DPO reward models' training sets."""
    input:
        hub=P.hub_input(),
        data=PATHS.data(PATHS.distill_data("train", "{bias}")),
        tokenizer=P.base_model_input("policy"),
    output:
        [PATHS.data(PATHS.distill_data(m, "{bias}")) for m in P.ensemble_members()],
    params:
        **light(bs=config["distill"]["ensemble_b"], n=config["distill"]["ensemble_n"], seed=config["seed"],
                longer=config["distill"]["longer_threshold"], tokenizer=P.base_model_ref("policy")),
    log:
        PATHS.log("data/distill/bias{bias}/ensemble"),
    threads: P.threads("light")
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/ensemble_subsets.py"
