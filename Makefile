# Every task has one entry point here; CI (.ci/run) runs `make test`. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
export PORT

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-17s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install the service and its dev/test tools

run: install ## Serve on http://$(HOST):$(PORT) with the demo upstreams (PORT=... to change)
	$(BIN)/python manage.py check
	$(BIN)/python manage.py migrate --no-input --verbosity 0
	$(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --lifespan on --http config.http:BoundedHttpToolsProtocol --no-access-log

test: install ## Run the whole test suite
	$(BIN)/python -m pytest

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy upstreams api config

format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: install ## Regenerate openapi/schema.yaml (validated, warnings are errors)
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file openapi/schema.yaml

bench: install ## Tributary vs reference implementations, same load (BENCH_ARGS=--quick for a smoke test)
	@command -v wrk >/dev/null || echo "wrk not found: using the Python load generator (apt-get install wrk for wrk)"
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-transports: install ## Measure the httpx transports (decides the upstream transport)
	$(BIN)/python benchmarks/transports.py

bench-hostile: install ## Hostile upstream and clients, measured (HOSTILE_ARGS="--tree /tmp/before --load-seconds 120")
	$(BIN)/python benchmarks/hostile.py $(HOSTILE_ARGS)

bench-database: install ## Measure the async database paths on PostgreSQL and SQLite (DATABASE_ARGS=--quick)
	$(BIN)/python benchmarks/database.py $(DATABASE_ARGS)

bench-collections: install ## A collection read with 20 products, with and without its database part (COLLECTIONS_ARGS=--quick)
	$(BIN)/python benchmarks/collections.py $(COLLECTIONS_ARGS)

.PHONY: help install run test lint format schema bench bench-transports bench-hostile bench-database bench-collections
