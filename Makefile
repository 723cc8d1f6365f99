# The project's only entry points. `make help` lists them.
# `make run` and `make test` install what they need: uv (into .tools/ when it is not
# on PATH) and the locked environment (.venv, from uv.lock).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --locked --all-packages
BUF_VERSION := 1.75.0
PYTEST_ARGS ?=
MYPY_DIRS := proto libs devcluster admin-srv token-srv user-srv device-srv data-srv tests bench

.PHONY: help sync run test lint format proto proto-check docker docker-push deploy secrets \
	bench reliability devcluster clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found on PATH: installing it into .tools/"
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

sync: $(UV) ## install the locked environment into .venv
	$(UV) sync --locked --all-packages

run: sync ## run the whole system on the embedded devcluster
	@echo "make run: not implemented yet (the devcluster runner)" >&2; exit 1

test: sync lint proto-check ## lint, check generated code, run every test
	@rc=0; $(RUN) pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$rc

lint: sync ## ruff (lint and format check), mypy --strict, buf lint
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	@for dir in $(MYPY_DIRS); do \
		if [ -n "$$(find $$dir -name '*.py' -print -quit 2>/dev/null)" ]; then $(RUN) mypy $$dir; fi; \
	done
	@if command -v npx >/dev/null 2>&1; then \
		cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) lint 2> >(grep -v '^npm warn' >&2) \
		&& echo "buf lint: clean"; \
	else echo "buf lint skipped: npx is not installed"; fi

format: sync ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

proto: sync ## regenerate proto/api from the .proto files
	$(RUN) python proto/generate.py

proto-check: sync ## fail when the generated code is stale
	$(RUN) python proto/generate.py --check

docker: ## build the five images
	@echo "make docker: not implemented yet" >&2; exit 1

docker-push: ## push the five images
	@echo "make docker-push: not implemented yet" >&2; exit 1

deploy: ## kubectl apply -f .k8s against the current kubectl context
	@echo "make deploy: not implemented yet" >&2; exit 1

secrets: ## generate the JWT signing key Secret (never committed)
	@echo "make secrets: not implemented yet" >&2; exit 1

bench: sync ## benchmarks; figures go to bench/results.json
	@echo "make bench: not implemented yet" >&2; exit 1

reliability: sync ## long soak and failure tests
	@echo "make reliability: not implemented yet" >&2; exit 1

devcluster: sync ## run the embedded Kubernetes API in the foreground
	@echo "make devcluster: not implemented yet" >&2; exit 1

clean: ## remove the environment, caches and devcluster state
	rm -rf .venv .tools .devcluster .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
