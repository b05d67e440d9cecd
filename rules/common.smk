# The workflow's plan lives in core.plan (config validation, path scheme, grids, specs, rule
# helpers; what the jobs run is core.jobs), unit-tested with the rest of core; this file builds
# the one Pipeline of this config and holds the one-line input functions the rules share. Path
# scheme: docs/design.md §5.

import sys

from core.plan import Pipeline
from core.plan.config import check_config_files, tracking_warning
from core.plan.paths import WILDCARD_CONSTRAINTS
from core.report.spec_types import to_data
from core.jobs.warm import start_server

check_config_files(workflow.configfiles)  # a key given twice: Snakemake's YAML keeps the last silently
P = Pipeline(config)  # validates the config (schema + cross-key checks) before any job
PATHS = P.paths
SPECS = P.specs


wildcard_constraints:
    **WILDCARD_CONSTRAINTS,


WARM = []  # this run's warm-start server (core.jobs.warm), if any


onstart:
    # the executor is known once the DAG is built (not while the Snakefile is parsed): warn about
    # a SQLite tracking URI on a cluster (profiles/slurm) before the first job is submitted, and
    # start the warm-start server for the jobs of a local run (resources.warm_start)
    if workflow.is_main_process and workflow.executor_plugin is not None:
        warning = tracking_warning(config, workflow.executor_plugin.name)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        server = start_server(config["resources"]["warm_start"], workflow.executor_plugin.name, PATHS.log("warm_start"))
        WARM.extend([server] if server else [])


onsuccess:
    for server in WARM:
        server.stop()


onerror:
    for server in WARM:
        server.stop()


def light(**extra):
    """Params of a light job: launch settings, tracking, and its own values."""
    return {**P.control("light"), **extra}


def rm_base(wc):
    return P.base_model_input(P.rm_role(wc.rmset))


def ppo_rewards(wc):
    """Each seed's reward model (and its metrics file) of a PPO grid point."""
    return P.ppo_reward_inputs(wc.variant, wc.div, wc.rho)


def bench_inputs(wc):
    return P.bench_inputs(wc.variant)


def reference_inputs(wc):
    return P.reference_inputs(wc.variant)
