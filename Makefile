# Two entry points for a fresh machine: `make demo` and `make test` (README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CLIENTS_VENV ?= .venv-clients
CLIENTS_BIN := $(CLIENTS_VENV)/bin

.PHONY: demo test lint typecheck check install lock clients

# Installs the versions pinned in requirements.lock (a constraints file: `make lock` renews it
# from pyproject.toml, tests/test_lock.py keeps the two in step). uv installs in seconds; where
# uv cannot be had, pip installs the same versions. Both write the packages' bytecode at install
# (pip does by default; uv with --compile-bytecode), and the project's own modules are
# byte-compiled too, so no later process compiles Python source (where PYTHONDONTWRITEBYTECODE
# is set, every process would, about 2-3 s each). Then the kernels are compiled into the cache
# once (`momentumbot precompile`, about half a minute), so the first backtest does not.
PACKAGES := $(VENV)/.packages
$(PACKAGES): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	@if $(BIN)/pip install --quiet uv >/dev/null 2>&1; then \
		echo "installing with uv (requirements.lock)"; \
		$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c requirements.lock -e '.[dev]'; \
	else \
		echo "uv unavailable: installing with pip (requirements.lock)"; \
		$(BIN)/pip install --quiet --upgrade pip && \
		$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'; \
	fi
	$(BIN)/python -m compileall -q src
	@touch $(PACKAGES)

$(BIN)/momentumbot: $(PACKAGES)
	$(BIN)/momentumbot precompile
	@touch $(BIN)/momentumbot

install: $(BIN)/momentumbot

# ib_insync 0.9.86 and IB's official ibapi (pinned in requirements-clients.txt) in their own venv,
# for the gateway tests that run them as unmodified clients over TCP (ib_insync's eventkit and
# ib_async's aeventkit install the same `eventkit/` folder, so they cannot share .venv).
$(CLIENTS_BIN)/installed: requirements-clients.txt
	$(PY) -m venv $(CLIENTS_VENV)
	@if $(CLIENTS_BIN)/pip install --quiet uv >/dev/null 2>&1; then \
		echo "installing the other TWS clients with uv (requirements-clients.txt)"; \
		$(CLIENTS_BIN)/uv pip install --python $(CLIENTS_BIN)/python --quiet --compile-bytecode -r requirements-clients.txt; \
	else \
		echo "uv unavailable: installing the other TWS clients with pip (requirements-clients.txt)"; \
		$(CLIENTS_BIN)/pip install --quiet -r requirements-clients.txt; \
	fi
	@touch $(CLIENTS_BIN)/installed

clients: $(CLIENTS_BIN)/installed

# Renew the pinned versions after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--quiet -o requirements.lock

# The demo first (with nothing compiled yet, a run this small goes uncompiled: same results,
# no wait), then the kernels are compiled for the runs after it.
demo: $(PACKAGES)
	$(BIN)/momentumbot demo
	@$(MAKE) --no-print-directory install

test: install clients
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src tests

check: lint typecheck test
