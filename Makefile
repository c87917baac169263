# Alliance Radar — two commands set everything up: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
CHAOS_ARGS ?=

.DEFAULT_GOAL := help

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) assets ## Create .venv (if missing) and install the project with its dev tools

# The alliance page's graph library, from the pinned npm package (package-lock.json) into the
# aggregator's static folder (git-ignored): served by the aggregator, nothing from a CDN.
VENDOR := services/aggregator/static/vendor

$(VENDOR)/cytoscape.min.js: node_modules/.package-lock.json
	mkdir -p $(VENDOR)
	cp node_modules/cytoscape/dist/cytoscape.min.js $@
	cp node_modules/cytoscape/LICENSE $(VENDOR)/cytoscape.LICENSE

assets: $(VENDOR)/cytoscape.min.js ## Copy the page's pinned npm assets into the aggregator's static folder

run: install ## Start broker + services, stream the demo articles, show the live view
	$(BIN)/radar up --demo

# Debian's Prometheus (prometheus + promtool) for tests/integration/test_prometheus.py;
# installed only when missing (CI runs as root; elsewhere sudo is used when present).
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

prometheus: ## Install Debian's prometheus package (prometheus, promtool) if missing
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; else \
		echo "installing Debian's prometheus package (for the Prometheus integration test)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -q --no-install-recommends prometheus; \
	fi

# Debian's stunnel4: the TLS terminator in front of the embedded broker (which has no TLS)
# for tests/integration/test_kafka_tls.py; installed only when missing.
stunnel: ## Install Debian's stunnel4 package (TLS terminator for the Kafka TLS test) if missing
	@if command -v stunnel >/dev/null; then :; else \
		echo "installing Debian's stunnel4 package (for the Kafka TLS integration test)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -q --no-install-recommends stunnel4; \
	fi

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts

# Debian's Chromium for the browser tests (tests/integration/test_page.py, driven by
# Playwright pointed at /usr/bin/chromium: no browser download); installed only when missing.
chromium: ## Install Debian's chromium package (headless browser for the page tests) if missing
	@if command -v chromium >/dev/null; then :; else \
		echo "installing Debian's chromium package (for the alliance page browser tests)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -q --no-install-recommends chromium; \
	fi

test: install prometheus stunnel chromium node_modules/.package-lock.json ## Run the whole suite (unit, then integration on the embedded broker)
	$(BIN)/ruff check .
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)
	$(BIN)/pytest tests/model -q -p no:cacheprovider --timeout=1200 $(PYTEST_ARGS)
	$(BIN)/pytest tests/integration -q $(PYTEST_ARGS)

# The fuzzers (tests/fuzzing.py): `make test` runs their short deterministic profile; this
# runs 10,000 cases per door with a fresh seed (RADAR_FUZZ_SEED=N reproduces a corpus run).
FUZZ_TESTS := tests/unit/test_fuzz_doors.py tests/integration/test_fuzz_topics.py \
	tests/integration/test_fuzz_http.py

fuzz: install ## Hostile input at every door: 10,000 cases each (over an hour on 2 cores)
	RADAR_FUZZ=full $(BIN)/pytest $(FUZZ_TESTS) -q --timeout=3600 $(PYTEST_ARGS)

bench: install ## Benchmark: throughput, latency at 50 articles/s, extractor speed, memory (QUICK=1: under 2 min)
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

.PHONY: backfill-bench
backfill-bench: install ## Backfill every Reuters-21578 TRAIN article into a fresh stack (about 15 min)
	$(BIN)/python -m bench.backfill $(BENCH_ARGS)

train: install ## Retrain the partnership model and the article gate from corpus/ (deterministic; rewrites services/extractor/data/partnership-model.json.gz, article-gate.json.gz)
	$(BIN)/radar train
	$(BIN)/python -m services.extractor.training.gate

eval: install ## Score the shipped extractor on the frozen held-out slice (and calibration)
	$(BIN)/radar eval

chaos: install ## Chaos suite: 10,000 articles, 20 kills and other faults vs a clean run (CHAOS_ARGS="--seed 2")
	$(BIN)/python -m chaos $(CHAOS_ARGS)

dashboards: install ## Regenerate deploy/grafana/dashboards/*.json from deploy/grafana/generate.py
	$(BIN)/python deploy/grafana/generate.py

lint: install ## ruff
	$(BIN)/ruff check .

clean: ## Remove the virtualenv and run state
	rm -rf $(VENV) .run .pytest_cache .ruff_cache

.PHONY: help install assets run test lint clean prometheus stunnel chromium fuzz bench chaos dashboards train eval
