# Two entry points for a fresh machine: `make demo` and `make test` (README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck check install

$(BIN)/momentumbot: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/momentumbot

install: $(BIN)/momentumbot

demo: install
	$(BIN)/momentumbot demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src

check: lint typecheck test
