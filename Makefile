# The README's commands. Each creates .venv and installs into it on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vrec needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/vrec demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/imaging.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/ratelimit.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/faults.py
	$(BIN)/python bench/schedules.py
	$(BIN)/python bench/backoffice.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
