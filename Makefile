# Everyday targets. `make run` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# test processes for `make test` (pytest-xdist; a file's tests stay in one process)
TEST_WORKERS ?= 2
# benchmarks run pinned to one core where taskset exists
PIN := $(shell command -v taskset >/dev/null 2>&1 && echo "taskset -c 0")

.PHONY: setup run test test-fast lint format bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,scale]'
	@touch $(STAMP)

setup: $(STAMP)

## the main job on embedded defaults: simulate 24 h, features, walk-forward training and backtest, report
run: setup
	$(BIN)/orderflow demo

## the fast lane (under 3 minutes): every test not marked slow; the whole suite is `make test`
test-fast: setup
	@$(BIN)/python -m pytest -m "not slow" -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## the whole test suite in TEST_WORKERS processes (exit status 5 = no tests collected is reported, not hidden)
test: setup
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## benchmarks print figures; they are not part of the test run
bench: setup
	$(PIN) $(BIN)/python benchmarks/bench_decode.py
	$(PIN) $(BIN)/python benchmarks/bench_simulator.py
	$(PIN) $(BIN)/python benchmarks/bench_features.py
	$(PIN) $(BIN)/python benchmarks/bench_models.py
	$(PIN) $(BIN)/python benchmarks/bench_ensemble.py
	$(PIN) $(BIN)/python benchmarks/bench_backtest.py

clean-venv:
	rm -rf $(VENV)
