"""Rule `real_load`: the AlpacaEval pool and HHH of a real-text config (core.jobs.real_text)."""

from core.jobs.launch import run_script
from core.jobs.real_text import load_sources


def main(sm) -> None:
    print(load_sources(sm.params.plan, sm.output.pool, sm.output.hhh), flush=True)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
