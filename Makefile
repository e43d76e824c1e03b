# Storewire: the commands the README names. Everything a target needs is installed by the target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_VERSION := 3.13
UV_VERSION := 0.13.9
UV := uv
RUN := $(UV) run --frozen
export UV_PYTHON := $(PY_VERSION)

.PHONY: help setup demo test lint typecheck validate build unit integration e2e bench reliability clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: .venv/.synced ## install uv and the locked environment into .venv

.venv/.synced: pyproject.toml uv.lock
	@command -v $(UV) >/dev/null 2>&1 && $(UV) --version | grep -q "$(UV_VERSION)" || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

demo: setup ## run the whole graph locally on the emulator and show what happened
	$(RUN) python -m storewire_local.demo

test: setup lint typecheck validate ## the full suite: lint, types, template checks, tests
	$(RUN) pytest

lint: setup ## ruff check and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup ## mypy, strict on the layer and the functions
	$(RUN) mypy

validate: setup ## cfn-lint, sam validate --lint and checkov on template.yaml (isolated, pinned tools)
	bash scripts/validate.sh

build: setup ## sam build (no container)
	bash scripts/sam.sh build

unit: setup
	$(RUN) pytest tests/unit

integration: setup
	$(RUN) pytest tests/integration

e2e: setup
	$(RUN) pytest tests/e2e

SEED ?= 1
ORDERS ?= 10000
reliability: setup ## fuzzing, seeded faulted runs, then a load run of ORDERS orders (SEED=1 ORDERS=10000)
	STOREWIRE_RELIABILITY=full STOREWIRE_RELIABILITY_SEED=$(SEED) $(RUN) pytest tests/reliability -q
	@mkdir -p .storewire
	$(RUN) python -m storewire_local.reliability --seed $(SEED) --orders $(ORDERS) --senders 16 \
		--out .storewire/reliability-$(SEED)-$(ORDERS).json

bench: setup ## benchmarks with budgets (ratios, requests and cost per order); writes bench/results.json
	$(RUN) python -m bench

clean:
	rm -rf .aws-sam .storewire .pytest_cache .mypy_cache .ruff_cache
