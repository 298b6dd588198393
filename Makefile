# Quick start: `make demo` then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of torch; a GPU user overrides it, e.g.
#   make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124" install
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check srkit common medsr geosr tests benchmarks examples docs
	$(BIN)/ruff format --check srkit common medsr geosr tests benchmarks examples docs

format: $(STAMP)
	$(BIN)/ruff format srkit common medsr geosr tests benchmarks examples docs
	$(BIN)/ruff check --fix srkit common medsr geosr tests benchmarks examples docs

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) demo_out .pytest_cache
