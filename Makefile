# One command per job; the README and CI call exactly these.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
# Run on the operating system's Python when it is one we support (3.11-3.13). Distributions build
# it, as the python image in deploy/ is built, with profile-guided optimisation and LTO; a locally
# compiled pyenv or asdf interpreter usually has neither. Measured at 1,000,000 children: 8-13%
# less CPU per search (README, "Measured"). Elsewhere uv finds an interpreter as usual.
SYSTEM_PYTHON := $(shell /usr/bin/python3 -c 'import sys; print(sys.executable if (3, 11) <= sys.version_info < (3, 14) else "")' 2>/dev/null)
ifneq ($(SYSTEM_PYTHON),)
export UV_PYTHON := $(SYSTEM_PYTHON)
endif

.PHONY: install web demo serve test lint bench clean

install:  ## Install uv (if missing) and every pinned dependency from uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --quiet --user "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

web:  ## Build the pages' static assets (GOV.UK Frontend from npm) into childindex/web/static
	@cd childindex/web/frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

demo: install web  ## Start the service on the embedded default (SQLite) with demo data
	@$(UV) run childindex demo

serve: install web  ## Start the service with the configuration in CHILDINDEX_* variables
	@$(UV) run childindex serve

test: install web  ## Run the whole suite, starting a real PostgreSQL (and Elasticsearch) first
	@$(UV) run bash tests/services/run-tests.sh

LINTED := childindex directory search auth interop tests bench

lint: install  ## ruff (check and format), the import rules (import-linter), mypy --strict
	@$(UV) run ruff check $(LINTED)
	@$(UV) run ruff format --check --quiet $(LINTED)
	@$(UV) run lint-imports
	@$(UV) run mypy

bench: install  ## Benchmarks at the scales the README reports (long: see README)
	@$(UV) run bash bench/run.sh

clean:
	rm -rf var .pytest_cache test-artifacts
