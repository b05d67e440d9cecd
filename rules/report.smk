# Tables, figures and the report. Each table/figure is built from a typed spec (rows x columns of
# metrics files + JSON keys; core.plan.specs, core.report.spec_types; params carry it as data), so `snakemake results/<config>/tables/<name>.md`
# requests exactly the metrics files that table reads (and, through them, only the models and
# data those need). The numbers themselves are read by core.report from the metrics files.


localrules:
    prefetch,
    claims,
    table,
    figure,
    report,


rule table:
    """One paper table as CSV + Markdown from the metrics files its spec names."""
    input:
        lambda wc: SPECS.table_files(wc.name),
    output:
        csv=PATHS.table("{name}", "csv"),
        md=PATHS.table("{name}"),
    wildcard_constraints:
        name="|".join(sorted(SPECS.tables(), key=len, reverse=True)),
    params:
        spec=lambda wc: to_data(SPECS.tables()[wc.name]),
    log:
        PATHS.log("tables/{name}"),
    threads: 1
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/make_table.py"


rule figure:
    """One paper figure as PNG from the metrics files (the same numbers as its data table)."""
    input:
        lambda wc: SPECS.figure_files(wc.name),
    output:
        PATHS.figure("{name}"),
    wildcard_constraints:
        name="|".join(sorted(SPECS.figures(), key=len, reverse=True)),
    params:
        spec=lambda wc: to_data(SPECS.figure(wc.name)),
    log:
        PATHS.log("figures/{name}"),
    threads: 1
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/make_figure.py"


rule claims:
    """Every claim of both papers with its measured effect, 95% interval, seeds and verdict."""
    input:
        SPECS.claim_files(),
    output:
        csv=PATHS.claims("csv"),
        md=PATHS.claims("md"),
    params:
        cells=to_data(SPECS.claims()),
        gates=to_data(SPECS.gates()),
    log:
        PATHS.log("claims"),
    threads: 1
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/make_claims.py"


if SPECS.ablation_rule():

    rule label_noise_ablation:
        """Why the DR reward models collapse: the reward-model TV grid once more without label noise
        (a nested run on the derived config <name>-label-t0), beside this world's (core.report.ablation).
        Every synthetic world has it (`make ablation`); the report holds it where report.ablation is set."""
        input:
            SPECS.ablation_inputs(),
        output:
            md=PATHS.ablation("md"),
            json=PATHS.ablation("json"),
            config=PATHS.ablation("yaml"),
        params:
            **light(config=config),  # launched as one process (not through accelerate)
        log:
            PATHS.log("ablation/label_noise"),
        threads: P.threads("train")  # its nested run's cores (`make ablation` sets all with --set-threads)
        resources:
            **P.resources("train"),
        conda:
            P.conda_env("train")
        script:
            "../workflow_scripts/label_noise_ablation.py"


rule report:
    """Every table and figure of both papers (and the theory experiments) in one document, and
    one MLflow run holding them all as artifacts."""
    input:
        **SPECS.report_inputs(),
    output:
        md=PATHS.report("md"),
        html=PATHS.report("html"),
    params:
        **light(name=config["name"], sections=SPECS.report_sections()),
    log:
        PATHS.log("report"),
    threads: 1
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/make_report.py"
