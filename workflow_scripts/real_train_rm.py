"""Rule `real_train_rm`: the reward-model heads of one grid point, every seed (core.pipeline.real)."""

from core.pipeline.real import run_script, train_rms


def main(sm) -> None:
    w = sm.wildcards
    train_rms(sm.params.plan, w.variant, w.div, float(w.rho), dict(sm.input.items()), sm.params.seeds)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
