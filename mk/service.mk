# The targets of a service folder's Makefile, which sets SERVICE (e.g. admin-srv) and
# includes this file. The whole system: `make run` at the repository root.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PACKAGE ?= $(subst -,_,$(SERVICE))
ROOT := $(abspath $(CURDIR)/..)
UV := $(or $(shell command -v uv 2>/dev/null),$(ROOT)/.tools/bin/uv)
# Tests run this uv (micro.testing.tools.uv_command), never `uv` by name.
export UV

.PHONY: help run test docker

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(SERVICE)/$(SERVICE)/g' \
		| awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## run $(SERVICE) in the foreground with configs/config.yaml
	@$(MAKE) -C $(ROOT) --no-print-directory sync
	cd $(ROOT) && MICRO_CONFIG_DIR=$(CURDIR)/configs $(UV) run --locked --all-packages python -m $(PACKAGE)

test: ## this service's tests
	@$(MAKE) -C $(ROOT) --no-print-directory sync test-tools
	cd $(ROOT) && $(UV) run --locked --all-packages pytest $(SERVICE)/tests -q

docker: ## build the $(SERVICE) image (the root's docker target, this service only)
	$(MAKE) -C $(ROOT) docker-$(SERVICE)
