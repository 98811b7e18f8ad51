# fieldcloud — the two quickstart commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test test-fast check lint typecheck imports serve bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

## run: the demo — server plus a simulated fleet and a feed of work orders
run: $(VENV)/.installed
	$(BIN)/fieldcloud demo

## serve: the server alone (settings from the environment)
serve: $(VENV)/.installed
	$(BIN)/fieldcloud serve

## test: the whole suite, with branch coverage (fails under the floor in pyproject.toml)
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest --cov

## test-fast: what runs in seconds while you work (no slow tests, no coverage)
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow"

## bench: the benchmark (a few minutes); prints a table, writes bench-results/bench.json
bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench --json bench-results/bench.json
bench-quick: $(VENV)/.installed-test
	$(BIN)/python -m bench --quick --json bench-results/bench-quick.json

## check: lint, type-check and the layer contracts (pyproject.toml [tool.importlinter])
check: lint typecheck imports
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy
imports: $(VENV)/.installed-test
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache .coverage .coverage.*
