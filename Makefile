# alert-manager: build, lint and test targets. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
export ALERT_MANAGER_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/alert-manager

.PHONY: help test bootstrap fmt-check lint unit schema build demo fixtures

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

test: bootstrap fmt-check lint unit ## install what is missing, then fmt, clippy and every test

bootstrap: ## install moto, cargo-lambda, cfn-lint, ... (venv) and Debian's Alertmanager, idempotently
	@infra/local/bootstrap.sh

fmt-check: ## cargo fmt --check
	$(CARGO) fmt --all --check

lint: ## clippy on every target, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: ## cargo test --workspace (needs `make bootstrap` for the real components)
	$(CARGO) test --workspace --no-fail-fast

schema: ## regenerate docs/envelope.schema.json from the Rust types
	UPDATE_SCHEMA=1 $(CARGO) test --workspace --test contract committed_schema_matches_the_types

fixtures: ## re-capture the Alertmanager webhook fixtures from Debian's Alertmanager
	infra/local/capture-fixtures.py

build: ## debug build of every crate
	$(CARGO) build --workspace

demo: bootstrap ## the whole pipeline on this machine: fire an alert, watch it travel, resolve it
	@echo "Building the agent, the enricher and the demo (first time: about 10 minutes on 2 cores; then seconds)..."
	$(CARGO) test --workspace --no-run --quiet
	@target/debug/demo
