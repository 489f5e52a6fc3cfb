# `make run` and `make test` work on a fresh clone: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench cluster clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/callbridge serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	bash scripts/ensure_system_packages.sh
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/sideband_ingest.py
	$(BIN)/python bench/sideband_flood.py
	$(BIN)/python bench/takeover.py
	$(BIN)/python bench/handoff_latency.py
	$(BIN)/python bench/capacity.py
	$(BIN)/python bench/call_start.py
	$(BIN)/python bench/stack_floor.py
	$(BIN)/python bench/peer_agents.py
	$(BIN)/python bench/asr_accuracy.py
	$(BIN)/python bench/hostile_inputs.py

cluster: $(STAMP)
	scripts/cluster.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
