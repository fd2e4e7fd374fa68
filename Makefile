# Two commands do all the set-up on a fresh clone:
#   make run    open the TUI on the built-in offline default preset
#   make test   run the test suite
# Each creates the virtual environment (.venv) when it is missing.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# The torch build: CUDA=cu130 (the PyPI default on Linux x86_64: NVIDIA driver >= 580, GPUs sm_75 and newer),
# cu128 (driver >= 525, sm_75+), cu126 (driver >= 525, sm_50..sm_90: V100, P100) or cpu; see the README.
# TORCH_INDEX overrides the index URL itself. `make CUDA=cu126 reinstall-torch` switches an existing .venv.
CUDA ?=
TORCH_INDEX ?= $(if $(CUDA),https://download.pytorch.org/whl/$(CUDA),)
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: run train test bench clean-venv reinstall-torch

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INDEX_ARGS) $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

reinstall-torch:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip uninstall -q -y torch torchvision
	$(BIN)/python -m pip install -q $(TORCH_INDEX_ARGS) $(TORCH_PINS)
	$(BIN)/optai-tui doctor || true

run: $(STAMP)
	$(BIN)/optai-tui

train: $(STAMP)
	$(BIN)/optai-tui train

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_loader.py
	$(BIN)/python benchmarks/bench_end_to_end.py

clean-venv:
	rm -rf $(VENV)
