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
	$(BIN)/dccsim run mhhs-day --scale $(DCCSIM_SCALE) --force

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
# Each benchmark runs beside a reference doing the same work another way, in the same session;
# `make bench` prints the timings and the ours/reference ratios and writes $(BENCH_DIR)/latest.json.
# `make bench-compare` is the regression gate (bench/perf/gate.py): it checks BASE out in a
# scratch worktree, runs the suite on it and on this checkout in turn, GATE_ROUNDS times each,
# alternating, and fails when a benchmark is slower by more than GATE_THRESHOLD and a
# Mann-Whitney test says so at GATE_ALPHA, or when a benchmark is missing or cannot be judged.
BENCH_DIR := .benchmarks
BASE ?= HEAD~1
GATE_ROUNDS ?= 8
GATE_THRESHOLD ?= 1.25
GATE_ALPHA ?= 0.01

bench: $(VENV)/.installed
	mkdir -p $(BENCH_DIR)
	$(BIN)/python -m pytest bench/perf/benchmarks --benchmark-json=$(BENCH_DIR)/latest.json

bench-compare: $(VENV)/.installed
	mkdir -p $(BENCH_DIR)
	$(BIN)/python -m dccsim.bench.perf.gate --base $(BASE) --rounds $(GATE_ROUNDS) \
	  --threshold $(GATE_THRESHOLD) --alpha $(GATE_ALPHA) --json $(BENCH_DIR)/gate.json

lint: $(VENV)/.installed
	$(BIN)/python -m pip install -q ruff mypy
	$(BIN)/ruff check core throttle cache loadgen bench tests

clean:
	rm -rf $(VENV) build *.egg-info
