# Set-up and run on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench-io bench-models bench-casia21 bench-sim2real bench-latency clean

setup: $(STAMP)

# torch is pinned here (its CPU build is on disk on our machines; a range would pull a CUDA build);
# pyproject.toml states the supported range.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $@

demo: setup
	$(BIN)/hccr quickstart --out runs/quickstart

test: setup
	$(BIN)/ruff check hccr tests benchmarks scripts
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check hccr tests benchmarks scripts

bench-io: setup
	$(BIN)/python benchmarks/io.py

clean:
	rm -rf $(VENV) runs .bench
