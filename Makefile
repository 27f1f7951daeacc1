# One place for the install recipe. Every target installs first; a second run reinstalls nothing
# unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
YTTM_STAMP := $(VENV)/.youtokentome-deterministic
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
export WANDB_MODE ?= offline
export WANDB_DIR := $(CURDIR)/data/wandb

.PHONY: install demo test ui bench quality lint clean-data

$(STAMP): pyproject.toml $(YTTM_STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# youtokentome 1.0.6 (ruclip's tokenizer) only builds with Cython 2 and no build isolation. It is built from
# source with DETERMINISTIC_QUEUE, its own switch that breaks ties between equally frequent merges by token
# ids: without it one corpus gives a different BPE, so a different compact model, on every run.
$(YTTM_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel 'setuptools>=68' 'cython<3'
	CPPFLAGS=-DDETERMINISTIC_QUEUE $(BIN)/pip install -q --force-reinstall --no-deps --no-binary youtokentome \
		--no-cache-dir --no-build-isolation youtokentome==1.0.6
	touch $(YTTM_STAMP)

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
