# Two entry points: `make compare` runs the main job, `make test` runs the checks.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install compare test lint

$(BIN)/pylibos: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/pylibos

compare: install
	$(BIN)/pylibos compare

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest
