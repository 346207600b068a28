# Two entry points for a newcomer: `make demo` and `make test` (README's first two commands).
# Each creates/uses a local virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# The CPU build of torch 2.13.0 is what the test machines carry; a bare `torch`
# would pull a multi-GB CUDA build.
TEST_FRAMEWORKS := torch==2.13.0 tensorflow-cpu==2.21.0 tf-keras==2.21.0 "transformers>=5,<6"

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.test: $(VENV)/.core
	$(BIN)/python -m pip install -q $(TEST_FRAMEWORKS) -e ".[test]" ruff
	@touch $@

# The main job on the shipped example, with no framework installed: look, plan, convert, prove the values.
demo: $(VENV)/.core
	$(BIN)/bridge inspect examples/tiny-bert/
	$(BIN)/bridge check examples/tiny-bert/ --to pytorch
	$(BIN)/bridge convert examples/tiny-bert/ --to pytorch -o build/tiny-bert-pytorch --force
	$(BIN)/bridge verify examples/tiny-bert/ build/tiny-bert-pytorch --no-forward
	@echo "With torch, tensorflow and transformers installed (make test does), drop --no-forward to compare a forward pass too."

test: $(VENV)/.test
	$(BIN)/python -m pytest

lint: $(VENV)/.test
	$(BIN)/ruff check bridge tf_side pt_side tests bench examples

bench: $(VENV)/.test
	$(BIN)/python bench/bench_inspect.py
	$(BIN)/python bench/bench_convert.py

clean:
	rm -rf $(VENV) .pytest_cache
