#!/usr/bin/env bash
# Run by Snakemake inside the new conda env: install this project (without dependencies, which
# the env file pins). The repository is $ROBUST_RLHF_ROOT, else the working directory (run
# Snakemake from the repository root, or export ROBUST_RLHF_ROOT=/path/to/robust-rlhf).
# Snakemake looks for <env>.post-deploy.sh beside each env file: envs/gpu.post-deploy.sh is a link here.
set -euo pipefail
root="${ROBUST_RLHF_ROOT:-$PWD}"
if [ ! -f "$root/pyproject.toml" ]; then
  echo "post-deploy: $root has no pyproject.toml; set ROBUST_RLHF_ROOT to the robust-rlhf checkout" >&2
  exit 1
fi
python -m pip install --no-deps -e "$root"
