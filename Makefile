# The two commands of the README: `make run` and `make test`. Everything else is set-up they share.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install index lint typecheck unit eval gate bench clean

run: install index
	$(PY) -m assistant chat

test: install lint typecheck unit gate

# Re-installs when pyproject.toml changes. torch is installed first and pinned, so pip takes the
# CPU build instead of resolving a multi-GB CUDA build for sentence-transformers.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

index: install
	$(PY) -m assistant index --if-needed

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy assistant tests

unit: install
	$(PY) -m pytest

eval: install index
	$(PY) -m assistant eval

# The evaluation as a regression gate: fails when a figure drops below eval/thresholds.json.
gate: install index
	$(PY) -m assistant eval --gate

bench: install index
	$(PY) -m assistant bench

clean:
	rm -rf index models .cache
