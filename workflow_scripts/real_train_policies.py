"""Rule `real_train_policies`: log-linear policies on the real candidates, every seed (core.pipeline.real)."""

from core.pipeline.real import run_script, train_policies


def main(sm) -> None:
    train_policies(sm.params.plan, dict(sm.input.items()), sm.params.seeds, list(sm.output))


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
