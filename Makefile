# nexus-cutover: every target runs offline against the pinned toolchain in .tools/bin.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PYTHON_BASE ?= python3

# Offline by default: no update checks, no plugin downloads, a file backend inside the
# repo's ignored folders, and the repo's virtualenv for the program and dynamic providers.
export PATH := $(ROOT)/.tools/bin:$(VENV)/bin:$(PATH)
export PULUMI_HOME := $(ROOT)/.pulumi-home
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PULUMI_PYTHON_CMD := $(VENV)/bin/python
export PULUMI_BACKEND_URL ?= file://$(ROOT)/.state

.PHONY: help setup system venv toolchain test lint demo testbed-up testbed-down bench clean

help:
	@echo "make setup         install the virtualenv and the pinned Pulumi toolchain (idempotent)"
	@echo "make test          lint + every test, including the real-engine ones"
	@echo "make demo          run the cutover end to end on the local homelab"
	@echo "make testbed-up    start the local homelab; then: source .testbed/env"
	@echo "make testbed-down  stop the local homelab"
	@echo "make bench         print benchmark figures as name: value lines"

setup: system venv toolchain

system:
	@bash tools/setup-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(VENV)/bin/python || $(PYTHON_BASE) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

toolchain:
	@bash tools/setup-toolchain.sh
	@bash tools/setup-kube.sh

lint: venv
	ruff check .
	ruff format --check .

test: setup lint
	$(VENV)/bin/python -m pytest

demo: setup
	$(VENV)/bin/python -m tests.demo

testbed-up: setup
	$(VENV)/bin/python -m tests.homelab up

testbed-down:
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python -m tests.homelab down; fi

bench: setup
	$(VENV)/bin/python -m tests.bench

clean: testbed-down
	rm -rf .state .pulumi-home .testbed .tools/build
