# Two entry points for a fresh machine: `make demo` and `make test` (README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck check install lock

# Installs the versions pinned in requirements.lock (a constraints file: `make lock` renews it
# from pyproject.toml, tests/test_lock.py keeps the two in step). uv installs in seconds; where
# uv cannot be had, pip installs the same versions. Then the kernels are compiled into the
# cache once (`momentumbot precompile`, about a minute), so the first backtest does not.
$(BIN)/momentumbot: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	@if $(BIN)/pip install --quiet uv >/dev/null 2>&1; then \
		echo "installing with uv (requirements.lock)"; \
		$(BIN)/uv pip install --python $(BIN)/python --quiet -c requirements.lock -e '.[dev]'; \
	else \
		echo "uv unavailable: installing with pip (requirements.lock)"; \
		$(BIN)/pip install --quiet --upgrade pip && \
		$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'; \
	fi
	$(BIN)/momentumbot precompile
	@touch $(BIN)/momentumbot

install: $(BIN)/momentumbot

# Renew the pinned versions after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--quiet -o requirements.lock

demo: install
	$(BIN)/momentumbot demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src tests

check: lint typecheck test
