"""Rule `real_train_distill`: d-, p-, e-DPO, DPO and IPO on length-biased real verdicts (core.jobs.real_distill)."""

from core.jobs.launch import run_script


def main(sm) -> None:
    from core.jobs.real_distill import train_distill

    train_distill(sm.params.plan, dict(sm.input.items()), sm.params.seeds, list(sm.output))


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
