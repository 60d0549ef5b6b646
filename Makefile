# The make targets are the project's interface: demo, test, lint, protos, bench.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint format protos protos-check bench clean

# A fresh machine gets its own virtual environment with the pinned dependencies.
$(STAMP): requirements/runtime.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Idle OpenMP threads must sleep, not spin: the local run shares two cores among many processes.
demo: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m hybridrl demo

test: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q

test-fast: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check libs tests bench protos services
	$(VENV)/bin/ruff format --check libs tests bench protos services
	$(VENV)/bin/mypy
	@# mypy cannot follow setuptools' editable mapping hybridrl_services -> services/: give it a path
	mkdir -p .mypy_path && ln -sfn ../services .mypy_path/hybridrl_services
	MYPYPATH=libs:.mypy_path $(VENV)/bin/mypy --strict -p hybridrl_services
	$(VENV)/bin/lint-imports
	$(PY) protos/generate.py --check

format: $(STAMP)
	$(VENV)/bin/ruff format libs tests bench protos services
	$(VENV)/bin/ruff check --fix libs tests bench protos services

protos: $(STAMP)
	$(PY) protos/generate.py

protos-check: $(STAMP)
	$(PY) protos/generate.py --check

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
