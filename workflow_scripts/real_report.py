"""Rule `real_report`: Table 8 and the claims of a real-text config (core.report.real)."""

from core.jobs.launch import run_script


def main(sm) -> None:
    from core.report.real import write_real_report

    out = write_real_report(
        list(sm.input.rms), sm.params.rm_variant, dict(sm.output.items()), list(sm.input.policies),
        list(sm.input.distill), sm.params.probe,
    )  # fmt: skip
    print(out, flush=True)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821
