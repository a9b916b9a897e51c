# MazeVault Certificates — developer entry points.
#
#   make run    create .venv, install, migrate, bootstrap the demo tenant, run web + worker + beat
#   make test   create .venv, install, run the whole pytest suite
#
# Only python3.11 (with venv and pip) is needed. The venv is re-installed only when pyproject.toml
# changes (a stamp file inside .venv records the last install). DATABASE_URL, CELERY_BROKER_URL,
# REDIS_URL and every other setting (docs/settings.md) are read from the environment as usual; with
# none set, everything runs embedded: SQLite and a file-system broker under ./var.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-mazevault
PIP_FLAGS ?= --disable-pip-version-check --quiet

PORT ?= 8000
HOST ?= 127.0.0.1
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install run test test-worker migrate bootstrap schema bench bench-list acme-clients ci clean distclean reset-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	@test -n "$(PYTHON)" || { echo "python3.11 (or python3 >= 3.11) is required" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

install: $(STAMP) ## create .venv and install the project with its test extras (only when pyproject.toml changed)

run: install ## migrate, bootstrap the demo tenant, run web (gunicorn) + Celery worker + beat on PORT (default 8000)
	$(PY) manage.py run_embedded --host $(HOST) --port $(PORT)

test: install ## run the whole suite (SQLite + eager tasks unless DATABASE_URL / CELERY_BROKER_URL are set)
	$(PY) -m pytest $(PYTEST_ARGS)

test-worker: install ## only the tests that need a real Celery worker (needs CELERY_BROKER_URL + PostgreSQL)
	$(PY) -m pytest tests/worker $(PYTEST_ARGS)

migrate: install ## apply database migrations
	$(PY) manage.py migrate --noinput

bootstrap: migrate ## create/refresh the demo tenant and print it as JSON (a new API token each time)
	$(PY) manage.py bootstrap_demo --json

schema: install ## write the OpenAPI schema to var/openapi.yaml and fail on generator warnings
	@mkdir -p var
	$(PY) manage.py spectacular --validate --fail-on-warn --file var/openapi.yaml

bench: install ## issuance throughput through the API vs. bare cryptography (bench/issue_rest.py)
	@test -f bench/issue_rest.py || { echo "bench/issue_rest.py is not there yet" >&2; exit 1; }
	$(PY) bench/issue_rest.py $(BENCH_ARGS)

bench-list: install ## list endpoint latency on 1,000,000 certificates in PostgreSQL (bench/list_scale.py)
	@test -f bench/list_scale.py || { echo "bench/list_scale.py is not there yet" >&2; exit 1; }
	$(PY) bench/list_scale.py $(BENCH_ARGS)

acme-clients: install ## the ACME clients' own venv (var/acme-clients: the acme library + certbot; tests create it too)
	DJANGO_SETTINGS_MODULE=mazevault.settings $(PY) -c 'import django; django.setup(); from tests.acme.live import client_venv; print(client_venv())'

ci: ## what CI runs: PostgreSQL + Redis (started if down) + a real worker, CI=true
	bash .ci/run

clean: ## remove caches and build artefacts (keeps .venv and the data in ./var)
	rm -rf .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## also remove .venv (the next make re-creates it)
	rm -rf $(VENV)

reset-data: ## DELETE ./var: the embedded database, broker files, generated secret key and KEK (all CA keys!)
	@read -r -p "This deletes ./var including every CA private key and the KEK. Type 'yes': " answer; \
	  test "$$answer" = yes
	rm -rf var
