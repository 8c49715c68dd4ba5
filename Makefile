# Two entry points: `make compare` runs the main job, `make test` runs the checks.
# PY picks the interpreter (CPython 3.11 or newer), e.g. `make test PY=python3.13`;
# VENV the environment it installs into (default .venv; made again if another Python made it).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYVER := $(shell $(PY) -c 'import sys; print(sys.version.split()[0])')
STAMP := $(VENV)/.installed-$(PYVER)

.PHONY: install compare test lint with-mbedtls workloads

$(STAMP): pyproject.toml
	@test -n "$(PYVER)" || { echo "ERROR: '$(PY)' does not run as Python; give one, e.g. make test PY=python3.13" >&2; exit 1; }
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print(sys.version.split()[0])')" != "$(PYVER)" ]; then \
		echo "$(VENV) was made by another Python: making it again with $(PY) $(PYVER)"; rm -rf $(VENV); fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

compare: install
	$(BIN)/pylibos compare

# The real programs under every configuration (needs scikit-learn: the .[workloads] extra).
workloads: install
	$(BIN)/pip install --quiet -e '.[dev,workloads]'
	$(BIN)/pylibos workloads --json benchmarks/results/workloads.json \
		--markdown benchmarks/results/workloads.md --plot benchmarks/results/workloads.png

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The suite in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them so
# the per-module fd/thread checks see what they see in one process; TEST_WORKERS=0 runs it
# in this one.
TEST_WORKERS ?= 3

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# On Python 3.13+, where python-mbedtls has no wheel: build it from source (needs mbed TLS
# 2.28 headers, e.g. Debian's libmbedtls-dev; a few minutes) so both TLS backends are there.
with-mbedtls: install
	$(BIN)/pip install --quiet 'python-mbedtls>=2.10,<3'
