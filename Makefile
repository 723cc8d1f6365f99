# The project's only entry points. `make help` lists them.
# `make run` and `make test` install what they need: uv (into .tools/ when it is not
# on PATH) and the locked environment (.venv, from uv.lock).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
# Tests and scripts run this uv (micro.testing.tools.uv_command), never `uv` by name.
export UV
RUN := $(UV) run --locked --all-packages
BUF_VERSION := 1.75.0
PYTEST_ARGS ?=
# Every *-srv folder with a pyproject.toml is a service: a new one edits no list here.
SERVICES := $(sort $(patsubst %/pyproject.toml,%,$(wildcard *-srv/pyproject.toml)))
MYPY_DIRS := proto libs devcluster $(SERVICES) tests bench scripts

.PHONY: help sync run test test-tools lint format proto proto-check docker docker-push deploy secrets \
	bench reliability devcluster clean new-service

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found on PATH: installing it into .tools/"
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

sync: $(UV) ## install the locked environment into .venv
	@# Bytecode compiled once here, as the images do (UV_COMPILE_BYTECODE): where
	@# PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile its imports
	@# from source each time it starts (a service's imports: about 3 s instead of 1.5 s).
	$(UV) sync --locked --all-packages --compile-bytecode

run: sync ## run the whole system on the embedded devcluster (Ctrl-C stops it all)
	@# Adds what is missing (e.g. the database Secrets of an older checkout), keeps the rest.
	@$(MAKE) --no-print-directory secrets DEV=1
	$(RUN) python -m devcluster run --manifests .k8s --manifests $(DEV_SECRETS_DIR)

test: sync test-tools lint proto-check ## lint, check generated code, run every test
	@rc=0; $(RUN) pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$rc

test-tools: sync ## install PostgreSQL and kubectl for the tests when missing (root, apt-get)
	@$(RUN) python scripts/install_test_tools.py

lint: sync ## ruff (lint and format check), mypy --strict, buf lint
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	@# A service folder is its tests' import root (they import `.conftest`), so no list in
	@# pyproject.toml names the services; by hand: `MYPYPATH=admin-srv mypy admin-srv`.
	@for dir in $(MYPY_DIRS); do \
		root=; case " $(SERVICES) " in *" $$dir "*) root=$$dir;; esac; \
		if [ -n "$$(find $$dir -name '*.py' -print -quit 2>/dev/null)" ]; then MYPYPATH=$$root $(RUN) mypy $$dir; fi; \
	done
	@if command -v npx >/dev/null 2>&1; then \
		cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) lint 2> >(grep -v '^npm warn' >&2) \
		&& echo "buf lint: clean"; \
	else echo "buf lint skipped: npx is not installed"; fi

format: sync ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

NAME ?=
new-service: $(UV) ## render a service from templates/service: make new-service NAME=orders-srv
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=<name>-srv" >&2; exit 2; }
	$(UV) run --locked --all-packages python scripts/new_service.py $(NAME)

proto: sync ## regenerate proto/api from the .proto files
	$(RUN) python proto/generate.py

proto-check: sync ## fail when the generated code is stale
	$(RUN) python proto/generate.py --check

# Images and deployment. Every image builds from docker/service.Dockerfile with the
# repository root as context; a service folder's `make docker` calls `$(MAKE) -C .. docker-<svc>`.
IMAGE_REGISTRY ?= devexps
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The moving tag the .k8s manifests reference (the original guide's devexps/<svc>:k8s).
IMAGE_TAG ?= k8s
DOCKER ?= docker
BASE_IMAGE ?= python:3.12-slim
DOCKER_BUILD_ARGS ?=
KUBECTL ?= kubectl
SECRETS_DIR ?= .k8s-secrets
DEV_SECRETS_DIR := .devcluster/secrets
IMAGE_REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE := $(shell git config --get remote.origin.url 2>/dev/null || echo unknown)
IMAGE_CREATED := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: $(addprefix docker-,$(SERVICES)) $(addprefix docker-push-,$(SERVICES))

docker: $(addprefix docker-,$(SERVICES)) ## build every service's image (DOCKER=podman works)

# The service's own build args (name, package, description, ports) come one a line from
# scripts/image_args.py; mapfile keeps a description's spaces inside its word.
$(addprefix docker-,$(SERVICES)): docker-%:
	@lines=$$($(RUN) python scripts/image_args.py $*); mapfile -t image_args <<< "$$lines"; \
	set -x; $(DOCKER) build -f docker/service.Dockerfile "$${image_args[@]}" \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(IMAGE_REVISION) \
		--build-arg CREATED=$(IMAGE_CREATED) \
		--build-arg SOURCE=$(IMAGE_SOURCE) \
		$(DOCKER_BUILD_ARGS) \
		-t $(IMAGE_REGISTRY)/$*:$(VERSION) -t $(IMAGE_REGISTRY)/$*:$(IMAGE_TAG) .

docker-push: $(addprefix docker-push-,$(SERVICES)) ## push every service's image

$(addprefix docker-push-,$(SERVICES)): docker-push-%:
	$(DOCKER) push $(IMAGE_REGISTRY)/$*:$(VERSION)
	$(DOCKER) push $(IMAGE_REGISTRY)/$*:$(IMAGE_TAG)

deploy: ## apply the namespace, the generated Secrets, then .k8s (current kubectl context)
	@test -d $(SECRETS_DIR) || { echo "no $(SECRETS_DIR)/: run 'make secrets' first" >&2; exit 1; }
	$(KUBECTL) apply -f .k8s/00-namespace.yaml
	$(KUBECTL) apply -f $(SECRETS_DIR)
	$(KUBECTL) apply -f .k8s

secrets: sync ## generate the JWT key, bootstrap and database Secrets (DEV=1: the dev flavour for make run)
	$(RUN) python scripts/make_secrets.py \
		$(if $(DEV),--dev --out $(DEV_SECRETS_DIR),--out $(SECRETS_DIR)) $(SECRETS_ARGS)

bench: sync ## benchmarks; figures go to bench/results.json
	@for script in bench/bench_*.py; do echo "== $$script"; $(RUN) python $$script; done
	@$(RUN) python bench/compare.py

# RELIABILITY_SECONDS (120), RELIABILITY_CHAOS_S, _CLIENTS, _USERS, _SEED, _FUZZ_CASES,
# _PHASE_S, _OVERLOAD_S, _DRAIN_ROUNDS, _DRAIN_LOAD_S: tests/reliability/conftest.py
reliability: sync ## soak under chaos, resilience drills, keep-alive drain, durability, leaks, OpenAPI fuzz; figures: bench/reliability.json
	$(RUN) pytest tests/reliability -s $(PYTEST_ARGS)

DEVCLUSTER_ARGS ?=
devcluster: sync ## run the embedded Kubernetes API in the foreground (https://127.0.0.1:6443)
	exec $(RUN) python -m devcluster serve $(DEVCLUSTER_ARGS)

clean: ## remove the environment, caches and devcluster state
	rm -rf .venv .tools .devcluster .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
