"""Rule `real_train_policies`: log-linear policies on the real candidates, every seed (core.jobs.real_text)."""

from core.jobs.launch import run_script
from core.jobs.real_text import train_policies


def main(sm) -> None:
    train_policies(sm.params.plan, dict(sm.input.items()), sm.params.seeds, list(sm.output))


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
