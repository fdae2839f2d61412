# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv when it is missing and install what they need into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench bench-compare lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the ray extra too, so that the tests of the Ray backend (tests/test_ray.py) run, in CI as here
$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $@

# the default scenario at half of GB (16 M meters, 51 M events, about 30-45 s and 1.4 GB of logs
# here); DCCSIM_SCALE overrides, e.g. `make run DCCSIM_SCALE=1.0` for the whole of GB
DCCSIM_SCALE ?= 0.5
run: $(VENV)/.installed
	$(BIN)/dccsim run mhhs-day --scale $(DCCSIM_SCALE)

# The report's browser test needs Debian's chromium: installed here when missing and root.
test: $(VENV)/.installed
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium for the report's browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: could not install chromium; the report's browser test will fail"; \
	  else \
	    echo "note: chromium is missing and this is not root: apt-get install chromium, or the report's browser test fails"; \
	  fi; }
	$(BIN)/python -m pytest

# Benchmarks (bench/perf/benchmarks, pytest-benchmark; not part of `make test`).
# Each benchmark runs beside a reference doing the same work another way (json + dataclasses
# for decoding; a fixed NumPy + plain-Python yardstick for a whole simulated day), in the same
# session on the same machine. `make bench` writes $(BENCH_DIR)/latest.json and, the first
# time, copies it to $(BENCH_DIR)/baseline.json (copy it again to move the baseline).
# `make bench-compare` runs them and fails when an ours/reference ratio (fastest rounds) grew
# by more than BENCH_MAX_SLOWDOWN over the baseline's. Ratios, not times: a machine that is
# slower or faster across the board leaves them unchanged, so it does not fail the gate.
# 75% because on a 2-core machine shared with other work an unchanged build moved the
# whole-day ratio by up to x1.43, the decode ratios by x1.25 and the cache-fill ratio (fresh
# arrays every round, so page faults) by x1.60; a build made twice as slow still fails.
BENCH_DIR := .benchmarks
BENCH_MAX_SLOWDOWN ?= 75%

bench: $(VENV)/.installed
	mkdir -p $(BENCH_DIR)
	$(BIN)/python -m pytest bench/perf/benchmarks --benchmark-json=$(BENCH_DIR)/latest.json
	test -f $(BENCH_DIR)/baseline.json || cp $(BENCH_DIR)/latest.json $(BENCH_DIR)/baseline.json

bench-compare: bench
	$(BIN)/dccsim compare $(BENCH_DIR)/baseline.json $(BENCH_DIR)/latest.json --max-slowdown $(BENCH_MAX_SLOWDOWN)

lint: $(VENV)/.installed
	$(BIN)/python -m pip install -q ruff mypy
	$(BIN)/ruff check core throttle cache loadgen bench tests

clean:
	rm -rf $(VENV) build *.egg-info
