# The two commands of the README: `make run` and `make test`. Both create the
# virtual environment on first use; it is reinstalled when pyproject changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install run test lint format dev bench clean

install: $(STAMP)

$(STAMP): pyproject.toml warehouse/dbt_plugin/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -e ./warehouse/dbt_plugin -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/revisit demo

test: install lint
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
