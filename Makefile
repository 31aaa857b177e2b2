# Two commands set up everything on a fresh machine (Python 3.11 and a JDK 17 given):
#   make demo   installs into .venv, starts the local stack, generates events, runs the pipeline
#   make test   installs into .venv and runs lint, type checks and the whole test suite
#               (and Debian's chromium for the UI screenshots, if it is missing)
#   Both install Debian's postgresql (the stack's serving database) if it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
UV_VERSION := 0.13.9
DAGSTER_PORT ?= 3000
export DAGSTER_HOME ?= $(CURDIR)/.lakehouse/dagster_home
CHROMIUM := /usr/bin/chromium
DASHBOARD_PORT ?= 8501

.PHONY: install demo test lint typecheck check stack-start stack-stop stack-status dev screenshots chromium postgres dashboard silver-job bench lock clean

# Bytecode is compiled at install: every run, step and Spark Python worker is a fresh
# interpreter, and where bytecode cannot be written next to the sources (read-only
# images, PYTHONDONTWRITEBYTECODE) each one would otherwise compile Dagster, dbt,
# pandas and PySpark from source again, seconds per process.
$(INSTALLED): requirements.lock pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} at {sys.executable}"'
	@command -v java >/dev/null || { echo "A JDK 17 is required (java not found on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

install: $(INSTALLED) postgres

# Debian's Chromium, which playwright drives for the UI screenshots (lakehouse_dev/screenshots.py
# and the user-flow tests): a browser build of playwright's own (`playwright install`) is a
# download from outside the package registries. Installed as root, or with sudo.
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "Chromium is required at $@: install your system's chromium package (apt-get not found)"; exit 1; }
	@if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "Chromium is required at $@: run 'apt-get install chromium' as root (no sudo found)"; exit 1; fi; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation
	@test -x $@ || { echo "apt-get installed chromium, but $@ is missing"; exit 1; }

chromium: $(CHROMIUM)

# Debian's PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin), which the local
# stack runs for the serving export (lakehouse_dev/postgres_server.py). Installed as root,
# or with sudo; a no-op when initdb and postgres are there.
postgres:
	@if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then exit 0; fi; \
	command -v apt-get >/dev/null || { echo "PostgreSQL is required: install your system's postgresql package (apt-get not found)"; exit 1; }; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "PostgreSQL is required: run 'apt-get install postgresql' as root (no sudo found)"; exit 1; fi; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; \
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "apt-get installed postgresql, but /usr/lib/postgresql/*/bin/initdb is missing"; exit 1; }

# The local Dagster instance (run history, schedules, sensor cursors) that the UI and the demo share.
$(DAGSTER_HOME)/dagster.yaml: config/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp config/dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m lakehouse_dev.demo

test: install lint typecheck $(CHROMIUM)
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

stack-start: install
	$(BIN)/lakehouse-stack start

stack-stop: install
	$(BIN)/lakehouse-stack stop

stack-status: install
	$(BIN)/lakehouse-stack status

# The Dagster UI on http://127.0.0.1:$(DAGSTER_PORT) with the daemon (sensors, automation,
# backfills). Ctrl-C or SIGTERM stops it and every process it started.
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/lakehouse-stack start
	$(BIN)/python -m lakehouse_dev.dev -h 127.0.0.1 -p $(DAGSTER_PORT)

# PNGs of the running `make dev`'s UI (asset graph, a silver table's plots, a check's
# history) in .lakehouse/screenshots/, taken in headless Chromium.
screenshots: install $(CHROMIUM)
	$(BIN)/python -m lakehouse_dev.screenshots --url http://127.0.0.1:$(DAGSTER_PORT)

# The dashboard on the PostgreSQL star schema (lakehouse_dev/dashboard/) on
# http://127.0.0.1:$(DASHBOARD_PORT), beside `make dev` (whose automation exports gold to
# PostgreSQL). Ctrl-C stops it.
dashboard: install
	$(BIN)/lakehouse-stack start
	$(BIN)/python -m lakehouse_dev.dashboard --host 127.0.0.1 --port $(DASHBOARD_PORT)

# The silver job's artefacts for AWS Glue and EMR Serverless (README "Deploying"): the
# bootstrap script and the code archive, in dist/silver-job/, to upload to S3.
silver-job: install
	$(BIN)/python -m resources.spark.aws_jobs package --out dist/silver-job

bench: install
	$(BIN)/python -m benchmarks

# Re-resolve the pinned transitive set after changing pyproject.toml's dependencies.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	-$(BIN)/lakehouse-stack stop
	rm -rf .lakehouse dbt/target dbt/logs .mypy_cache .ruff_cache .pytest_cache
