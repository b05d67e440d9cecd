# robust-rlhf: one DAG that rebuilds every table and figure of the DR-RLHF paper and the
# reward-model distillation paper (docs/design.md). Outputs of a config go to results/<its name>/.
#
#   snakemake --cores 2                                    # the embedded default (config.yaml)
#   snakemake --cores 2 results/embedded-default/tables/table1.md   # only what Table 1 needs
#   snakemake --cores 2 report                             # everything + results/report.md
#   snakemake -n --configfile configs/paper.yaml           # the papers' full grids (dry run)
#
# A --configfile given on the command line REPLACES config.yaml (it is not merged into it), so
# each shipped config is complete on its own; --config key=value still overrides single keys.

import os

from snakemake.utils import min_version

min_version("9.0")


if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


if config.get("experiment") == "real-text":

    include: "rules/real.smk"  # small-real: real verdicts on a frozen encoder (docs/small-real.md)

    rule all:
        default_target: True
        input:
            R.claims("md"),
            R.table("md"),
            [R.table("md", 6)] if "policy" in config else [],

else:

    include: "rules/common.smk"
    include: "rules/data.smk"
    include: "rules/reward.smk"
    include: "rules/policy.smk"
    include: "rules/eval.smk"
    include: "rules/theory.smk"
    include: "rules/report.smk"

    rule all:
        default_target: True
        input:
            PATHS.report("md"),
            PATHS.report("html"),
