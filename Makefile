# Two commands for newcomers: `make demo` and `make test`. Only Python 3.11 and make are needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-real test lint unit venv bytecode bench docs docs-serve clean browser

venv: $(STAMP)

# Themis's own modules compiled to bytecode ahead (an editable install writes none, and with
# PYTHONDONTWRITEBYTECODE set no process ever does: each then compiles ~24k lines, ~0.15 s of
# CPU of a run's start, ADR 0099). Python reads them while they match their source.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q themis

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,docs]'
	$(BIN)/python -m compileall -q themis
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/themis run examples/demo.toml --store themis.duckdb

# A short experiment on a real model (SmolLM2-135M, fetched once into .cache/) served by
# llama.cpp on 127.0.0.1; see scripts/demo_real.py.
demo-real: $(STAMP)
	$(BIN)/python scripts/demo_real.py

# The browser tests (tests/browser/) drive Debian's chromium through Playwright; Playwright's own
# browser download needs a network, so the system package is installed when missing (as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		[ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || { \
		echo "chromium is missing: install Debian's chromium (apt-get install chromium)"; exit 1; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory docs

lint: $(STAMP)
	$(BIN)/ruff check themis tests bench scripts
	$(BIN)/ruff format --check themis tests bench scripts
	$(BIN)/mypy --strict themis
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/contract

# The documentation site (docs/ -> site/); --strict turns every warning (a broken link, a page
# missing from the build, an undescribed config field) into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
