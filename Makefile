# The two commands of the README: `make run` and `make test`. Both create the
# virtual environment on first use; it is reinstalled when pyproject changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# uv (from PyPI, into the venv) resolves and installs several times faster than pip.
UV     := $(BIN)/uv

.PHONY: install system-packages run test lint format dev bench clean

install: $(STAMP)

$(STAMP): pyproject.toml warehouse/dbt_plugin/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PIP) install --quiet "uv>=0.5,<1"
	$(UV) pip install --quiet --python $(BIN)/python -e ./warehouse/dbt_plugin -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/revisit demo

# Debian packages some tests drive (Chromium, PostgreSQL): apt-get when missing.
system-packages:
	@scripts/system-packages

test: install lint system-packages
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: install
	$(BIN)/revisit dev

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf .data dbt_project/target dbt_project/logs logs .pytest_cache .ruff_cache
