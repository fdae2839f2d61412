# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv when it is missing and install what they need into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench bench-compare lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# the default scenario at a laptop-sized scale (about a minute here); DCCSIM_SCALE overrides
DCCSIM_SCALE ?= 0.05
run: $(VENV)/.installed
	$(BIN)/dccsim run mhhs-day --scale $(DCCSIM_SCALE)

test: $(VENV)/.installed
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/python -m pip install -q ruff mypy
	$(BIN)/ruff check core throttle cache loadgen bench tests

clean:
	rm -rf $(VENV) build *.egg-info
