# The two commands that matter: `make run` (the pipeline, live in the Dagster UI) and `make test`.
# Both do all of their own set-up on a fresh machine: virtualenv, packages, the local stack.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export TZ := UTC
export DAGSTER_HOME ?= $(HOME)/.local/share/clickstream/dagster
PYTEST_ARGS ?=

.PHONY: install up down status run demo reset dashboard test check unit lint validate browser bench bench-live bench-profile clean

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

up: install
	$(BIN)/clickstream stack up

down:
	@if [ -x $(BIN)/clickstream ]; then $(BIN)/clickstream stack down; fi

status: install
	$(BIN)/clickstream stack status

# The main job: stack up, topics, live traffic in the background, Dagster UI with sensors on.
RATE ?= 100
run: install
	$(BIN)/clickstream run --rate $(RATE)

# A bounded end-to-end run on four generated days, then a report from Elasticsearch.
demo: install
	@mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/clickstream demo

# make run's data from scratch (asks first; stop make run before): topics, lake, indices, instance.
reset: up
	$(BIN)/clickstream reset

# The dashboard page on its own (make run serves it too); PREFIX=clickstream-demo shows the demo's.
PREFIX ?=
dashboard: install
	$(BIN)/clickstream dashboard $(if $(PREFIX),--index-prefix $(PREFIX))

lint: install
	$(BIN)/ruff check .

validate: install
	@mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/dg check defs

# The UI test drives Debian's chromium through chromedriver; install them when missing.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver for the UI test"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

# Unit tests first, in a process of their own and before any service starts, so a unit failure
# shows in minutes; then the stack and the integration tests: those that leave the shared
# services alone on TEST_WORKERS workers (a module each, so module fixtures are built once), then
# the `serial` ones, which stop or strain a shared service, alone. A PYTEST_ARGS subset that
# selects nothing in one phase (pytest's exit 5) does not fail the others.
TEST_WORKERS ?= 2
test: lint validate
	$(BIN)/pytest tests/unit $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(MAKE) --no-print-directory up browser
	$(BIN)/pytest tests/integration -m "not serial" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ]
	$(BIN)/pytest tests/integration -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The fast loop: lint, the definitions, the unit tests; no service is started.
check: lint validate unit

# Unit tests only: no service, no Maven, no download (pure logic and an in-process Spark).
unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# Benchmarks are measurements, not tests: every stage on one generated day, then end to end.
# `make bench EVENTS=10000000` is the full run; results go to bench/results/latest.{json,png}.
EVENTS ?= 1000000
BENCH_ARGS ?=
bench: up
	$(BIN)/clickstream bench --events $(EVENTS) $(BENCH_ARGS)

# The live path as `make run` runs it (dagster dev, daemon, sensors, queued runs) under steady
# traffic, minute by minute; results go to bench/results/live-latest.{json,png}.
MINUTES ?= 30
bench-live: up
	$(BIN)/clickstream bench live --rate $(RATE) --minutes $(MINUTES) $(BENCH_ARGS)

# Where the ingest's time goes: each layer of its transformation, then the real ingest, on one
# backlog of EVENTS; results go to bench/results/profile-latest.json.
bench-profile: up
	$(BIN)/clickstream bench profile --events $(EVENTS) $(BENCH_ARGS)

clean: down
	rm -rf $(VENV) .pytest_cache .ruff_cache
