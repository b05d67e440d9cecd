"""Rule `real_encode`: the frozen encoder's states of every text, once (core.jobs.real_text)."""

from core.jobs.launch import run_script
from core.jobs.real_text import encode


def main(sm) -> None:
    print(encode(sm.params.plan, sm.input.pool, sm.input.hhh, dict(sm.output.items())), flush=True)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
