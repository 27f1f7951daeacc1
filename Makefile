# One place for the install recipe. Every target installs first; a second run reinstalls nothing
# unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
export WANDB_MODE ?= offline
export WANDB_DIR := $(CURDIR)/data/wandb

.PHONY: install demo test ui bench quality lint clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel 'setuptools>=68' 'cython<3'
	# youtokentome 1.0.6 (ruclip's tokenizer) only builds with Cython 2 and no build isolation.
	$(BIN)/pip show -q youtokentome 2>/dev/null || $(BIN)/pip install -q --no-build-isolation youtokentome==1.0.6
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.local.yaml
	mkdir -p $(DAGSTER_HOME) $(WANDB_DIR)
	cp $< $@

demo: install
	$(BIN)/mm-pipeline demo --out data/sample --n 3000 --batches 3

test: install
	$(BIN)/ruff check mm_pipeline mm_pipeline_tests benchmarks
	$(BIN)/pytest

ui: install
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install
	$(BIN)/python benchmarks/run_all.py

quality: install
	$(BIN)/python benchmarks/quality.py

lint: install
	$(BIN)/ruff check mm_pipeline mm_pipeline_tests benchmarks
	$(BIN)/ruff format --check mm_pipeline mm_pipeline_tests benchmarks

clean-data:
	rm -rf data/store data/sample data/dagster_home/storage data/wandb
