"""One code style, checked where CI runs: ruff's lint rules and formatter at the project's line
length (pyproject.toml), and Snakemake's linter on the workflow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
PATHS = ["core", "tests", "benchmarks", "workflow_scripts"]


def tool(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def test_ruff_check_and_format_pass():
    check = subprocess.run([tool("ruff"), "check", *PATHS], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-3000:]
    fmt = subprocess.run([tool("ruff"), "format", "--check", *PATHS], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_snakemake_lint_passes(tmp_path):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for config in ("config.yaml", "configs/paper.yaml", "tests/smoke.yaml"):
        proc = subprocess.run(
            [
                tool("snakemake"),
                "-s",
                str(REPO / "Snakefile"),
                "-d",
                str(tmp_path),
                "--lint",
                "--configfile",
                str(REPO / config),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, f"{config}:\n{(proc.stdout + proc.stderr)[-3000:]}"
