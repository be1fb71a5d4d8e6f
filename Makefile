# Set-up and run on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system demo test test-fast lint bench bench-io bench-shipped bench-latency clean

setup: $(STAMP) system

# System packages the browser test needs (Debian's Chromium and a CJK font for the drawing page).
# Installed only when missing and when apt-get can be used; otherwise that one test is skipped.
system:
	@if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/wqy ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and fonts-wqy-microhei (browser test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	  else echo "note: chromium not installed; the browser test will be skipped"; fi; \
	fi

# torch is pinned here (its CPU build is on disk on our machines; a range would pull a CUDA build);
# pyproject.toml states the supported range.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $@

demo: setup
	$(BIN)/hccr quickstart --out runs/quickstart

test: setup
	$(BIN)/ruff check hccr tests benchmarks scripts
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check hccr tests benchmarks scripts

# Each benchmark reproduces stated figures (benchmarks/README.md); `make bench NAME=shipped` runs one.
bench: setup
	$(BIN)/python -m benchmarks $(NAME)

bench-io: setup
	$(BIN)/python -m benchmarks io

bench-shipped: setup
	$(BIN)/python -m benchmarks shipped

bench-latency: setup
	$(BIN)/python -m benchmarks latency

clean:
	rm -rf $(VENV) runs .bench
