"""Rule `real_train_rm`: the reward-model heads of one grid point, every seed (core.jobs.real_text)."""

from core.jobs.launch import run_script
from core.jobs.real_text import train_rms


def main(sm) -> None:
    w = sm.wildcards
    train_rms(sm.params.plan, w.variant, w.div, float(w.rho), dict(sm.input.items()), sm.params.seeds)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
