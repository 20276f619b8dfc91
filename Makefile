# Two commands on a fresh machine: `make synth` and `make test`. Everything else is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# ENV=dev synthesizes one environment; empty = all of them.
ENV ?=
# IMAGE=<registry>/<repo>@sha256:<digest>: deploy this prebuilt worker image instead of building one.
IMAGE ?=

.PHONY: setup synth test lint local clean diagram stateful-record nag-baseline

$(PY):
	$(PYTHON) -m venv $(VENV)

# The project itself (pyproject.toml) is installed editable: jobfleet_* / cdk_app / stacks / worker /
# redrive import normally, from this checkout.
$(VENV)/.runtime-installed: requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt worker_image/requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@ $(VENV)/.runtime-installed

.venv-checkov/.installed: requirements-checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.dev-installed node_modules/.installed .venv-checkov/.installed

synth: $(VENV)/.runtime-installed node_modules/.installed
	rm -rf cdk.out
	npx --no-install cdk synth --quiet $(if $(ENV),-c env=$(ENV)) $(if $(IMAGE),-c image=$(IMAGE))
	$(PY) -m jobfleet_tools summary cdk.out

# Regenerates docs/architecture.{dot,png} from the synthesized prod stage (needs graphviz `dot`).
diagram: synth
	$(PY) -m jobfleet_tools diagram cdk.out prod docs/architecture

# Rewrites stateful_resources.json (queues, DLQs, tables, keys, buckets: logical IDs and the
# properties whose change replaces them) and prints what changed. Only on purpose: `make test`
# fails while the synthesized resources differ from the committed record.
stateful-record: $(VENV)/.runtime-installed node_modules/.installed
	$(PY) -m cdk_app.stateful_record

# Rewrites nag_baseline.json (findings per rule of cdk-nag's NIST 800-53 rev5, HIPAA, PCI DSS 3.2.1
# and Serverless packs, report mode) and prints what changed. `make test` fails when a rule grows.
nag-baseline: $(VENV)/.runtime-installed node_modules/.installed
	$(PY) -m cdk_app.nag_report

# mypy: strict on jobfleet_contract and jobfleet_config, checked bodies everywhere else (pyproject.toml).
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/pytest -n 2

# The whole platform on this machine (moto, API, workers); see docs/local.md. Ctrl-C stops it.
local: $(VENV)/.dev-installed
	$(PY) -m jobfleet_tools local

clean:
	rm -rf cdk.out .pytest_cache .ruff_cache .mypy_cache
