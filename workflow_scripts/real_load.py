"""Rule `real_load`: the AlpacaEval pool and HHH of a real-text config (core.pipeline.real)."""

from core.pipeline.real import load_sources, run_script


def main(sm) -> None:
    print(load_sources(sm.params.plan, sm.output.pool, sm.output.hhh), flush=True)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
