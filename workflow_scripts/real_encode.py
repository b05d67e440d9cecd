"""Rule `real_encode`: the frozen encoder's states of every text, once (core.pipeline.real)."""

from core.pipeline.real import encode, run_script


def main(sm) -> None:
    print(encode(sm.params.plan, sm.input.pool, sm.input.hhh, dict(sm.output.items())), flush=True)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
