# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PG_BIN ?= /usr/lib/postgresql/15/bin

.PHONY: demo test lint test-sqlite test-postgres install install-dev postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make demo: fresh SQLite demo with the protocol and one account per role, then the web server
demo: install
	$(BIN)/ildtrial demo

## PostgreSQL 15 binaries for the PostgreSQL pass (installed with apt-get when absent)
postgres:
	@if [ ! -x $(PG_BIN)/initdb ]; then \
	  echo "PostgreSQL 15 not found: installing it with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

lint: install-dev
	$(BIN)/ruff check src tests scripts

## chromium for the real-browser tests (tests/browser; installed with apt-get when absent)
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "chromium not found: installing it with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test-sqlite: install-dev browser
	ILDTRIAL_BROWSER_TESTS=required $(BIN)/python -m pytest -n 2

test-postgres: install-dev postgres
	PG_BIN=$(PG_BIN) $(BIN)/python scripts/with_postgres.py -- $(BIN)/python -m pytest -n 2 -m "not sqlite_only" \
	  tests/edc tests/datasets tests/reports tests/simulate/test_trial_run.py tests/reliability/test_backup.py

## make test: lint, the whole suite on SQLite, then the database tests on a throwaway PostgreSQL 15
test: lint test-sqlite test-postgres

clean:
	rm -rf $(VENV) var build *.egg-info src/*.egg-info
