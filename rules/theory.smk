# Theory experiments (docs/design.md §1.4, core.theory): Algorithms 1-3 in the linear /
# log-linear setting and the distillation paper's bandit and bag-of-words analyses. Each
# experiment is one job: core.theory.run_<name>(config, seed) -> table + summary, plot_<name>.


rule theory:
    """One theory experiment: metrics JSON, table (CSV + Markdown) and figure."""
    output:
        metrics=PATHS.metrics("theory", "{exp}"),
        csv=PATHS.table("theory_{exp}", "csv"),
        md=PATHS.table("theory_{exp}"),
        figure=PATHS.figure("theory_{exp}"),
    params:
        **light(cfg=lambda wc: config["theory"]["experiments"][wc.exp], seed=config["theory"]["seed"]),
    log:
        PATHS.log("theory/{exp}"),
    threads: 1
    resources:
        **P.resources("light"),
    conda:
        P.conda_env("light")
    script:
        "../workflow_scripts/theory.py"
