# `make run`: venv, install, ingest corpus/ if the index is missing or stale, launch the UI.
# `make test`: the whole test suite, the evaluation gate included.
# `make load`: 10, 25, 50 and 100 concurrent users against a real `knee serve` (evals/load.py).
# `make fuzz`: the long runs: `-m fuzz` tests, then 20 stops of `knee serve` with requests in flight.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install run ingest serve test test-fast eval bench load fuzz clean

install: $(STAMP)

# torch first, alone: the CPU build on this disk. Asked for later by sentence-transformers,
# a bare requirement would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

ingest: install
	$(BIN)/knee ingest --if-stale

run: ingest
	$(BIN)/knee serve --host $(HOST) --port $(PORT)

# Two workers (pytest-xdist), a test file to each in turn: 12 min instead of 17.5 on this 2-core
# machine (measured 2026-11-26, 1157 tests); a file's tests share its fixtures in one worker.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -m "not browser and not server and not slow"

eval: install
	$(BIN)/knee eval

bench: install
	$(BIN)/knee bench

# Starts its own `knee serve` on 127.0.0.1 (a free port, the repository's index), writes
# runs/load-<time>.json and prints a table. LOAD_ARGS passes options, e.g. LOAD_ARGS="--think 5".
load: ingest
	$(BIN)/python -m evals.load $(LOAD_ARGS)

# pytest exits 5 when no test carries the marker: not a failure here.
fuzz: ingest
	$(BIN)/python -m pytest -q -m fuzz || [ $$? -eq 5 ]
	$(BIN)/python -m evals.stoploop --runs 20 --requests 20

clean:
	rm -rf .knee runs artifacts .pytest_cache
