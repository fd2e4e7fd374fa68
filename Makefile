# Two commands do all the set-up on a fresh clone:
#   make run    open the TUI on the built-in offline default preset
#   make test   run the test suite
# Each creates the virtual environment (.venv) when it is missing.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: run train test bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/optai-tui

train: $(STAMP)
	$(BIN)/optai-tui train

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_loader.py
	$(BIN)/python benchmarks/bench_end_to_end.py

clean-venv:
	rm -rf $(VENV)
