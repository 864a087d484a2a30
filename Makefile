# alert-manager: build, lint and test targets. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
export ALERT_MANAGER_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/alert-manager

.PHONY: help test bootstrap fmt-check lint unit test-faults bench schema build demo fixtures deploy-lambda image

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

test: ## fmt, clippy and every test, the bootstrap beside the one build, then where the time went (infra/local/ci.sh)
	@infra/local/ci.sh

bootstrap: ## install moto, cargo-lambda, cfn-lint, ... (venv) and Debian's Alertmanager, idempotently
	@infra/local/bootstrap.sh

fmt-check: ## cargo fmt --check
	$(CARGO) fmt --all --check

lint: ## clippy on every target, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: ## cargo test --workspace (needs `make bootstrap` for the real components)
	$(CARGO) test --workspace --no-fail-fast

test-faults: ## the heavy fault test: 2,000 alerts through the whole pipeline, SNS outage, agent SIGKILL (about a minute)
	$(CARGO) test --workspace --test faults -- --ignored --nocapture

bench: ## benchmarks (release builds, wrk, Alertmanager, moto) -> docs/benchmarks.md and docs/bench/*.svg: 22 min after make test (release builds from nothing), about 9 min warm
	@infra/local/bootstrap.sh bench
	$(ALERT_MANAGER_CACHE)/venv/bin/python3 infra/bench/run.py

image: ## the agent's image without a Docker daemon (buildah, podman), then --help, /healthz and /readyz from it
	@infra/local/bootstrap.sh image
	infra/docker/build-local.sh

schema: ## regenerate docs/envelope.schema.json from the Rust types
	UPDATE_SCHEMA=1 $(CARGO) test --workspace --test contract committed_schema_matches_the_types

fixtures: ## re-capture the Alertmanager webhook fixtures from Debian's Alertmanager
	infra/local/capture-fixtures.py

build: ## debug build of every crate
	$(CARGO) build --workspace

demo: ## the whole pipeline on this machine: fire an alert, watch it travel, resolve it
	@echo "Installing what is missing beside the one build of the agent, the enricher and the demo (first time: about 7 minutes on 2 cores; then seconds)..."
	@infra/local/ci.sh demo

# `cargo lambda` from the venv `make bootstrap` creates, else one on PATH.
CARGO_LAMBDA ?= $(if $(wildcard $(ALERT_MANAGER_CACHE)/venv/bin/cargo-lambda),$(ALERT_MANAGER_CACHE)/venv/bin/cargo-lambda lambda,$(CARGO) lambda)
FUNCTION_NAME ?= alert-manager-enricher

deploy-lambda: ## REAL AWS ACCOUNT: build the enricher for arm64 and deploy it (needs ENRICHER_ROLE_ARN, ENRICHED_TOPIC_ARN; see infra/cloudformation)
	@test -n "$$ENRICHER_ROLE_ARN" || { echo "deploy-lambda: set ENRICHER_ROLE_ARN to the stack output EnricherRoleArn (see infra/iam/README.md, section Deploying)" >&2; exit 2; }
	@test -n "$$ENRICHED_TOPIC_ARN" || { echo "deploy-lambda: set ENRICHED_TOPIC_ARN to the stack output EnrichedTopicArn" >&2; exit 2; }
	cd lambda && PATH="$(ALERT_MANAGER_CACHE)/venv/bin:$$PATH" $(CARGO_LAMBDA) build --release --arm64 --output-format zip
	@# The fleet settings go through a file: --env-var splits values on commas (ALLOWED_ACCOUNTS).
	@umask 077; env_file=$$(mktemp); trap 'rm -f "$$env_file"' EXIT; \
	echo "ENRICHED_TOPIC_ARN=$$ENRICHED_TOPIC_ARN" > "$$env_file"; \
	for v in STATE_TABLE CROSS_ACCOUNT_ROLE_NAME ALLOWED_ACCOUNTS CROSS_ACCOUNT_EXTERNAL_ID; do \
	  if [ -n "$${!v}" ]; then echo "$$v=$${!v}" >> "$$env_file"; fi; done; \
	cd lambda && $(CARGO_LAMBDA) deploy --admerge --iam-role "$$ENRICHER_ROLE_ARN" \
	  --env-file "$$env_file" \
	  --binary-name alert-manager-enricher $(FUNCTION_NAME)
