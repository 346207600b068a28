# Two entry points for a newcomer: `make demo` and `make test` (README's set-up commands).
# Each creates/uses a local virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TOOLS  := .venv-tools/bin

# torch's CPU build: PyPI's `torch` on Linux is the multi-GB CUDA build, so torch comes alone from PyTorch's CPU
# index when that index answers a 3 s probe; otherwise (offline, or behind a mirror) from a wheel pip finds without
# it (find-links, a local index), asked once with no retries. macOS's CPU build has no `+cpu` tag.
TORCH_CPU       := torch==2.13.0$(if $(filter Darwin,$(shell uname -s)),,+cpu)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TEST_FRAMEWORKS := tensorflow-cpu==2.21.0 tf-keras==2.21.0 "transformers>=5,<6" keras-hub==0.32.0 peft==0.21.2
# lint and typecheck need neither the frameworks nor the test venv.
TOOL_PINS := ruff==0.17.6 mypy==2.4.1 types-PyYAML

.PHONY: demo test test-fast lint typecheck wheel-smoke ci bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.test: $(VENV)/.core
	@if $(BIN)/python -c "import urllib.request as r; r.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=3)" 2>/dev/null; \
	then $(BIN)/python -m pip install -q --retries 1 --extra-index-url $(TORCH_CPU_INDEX) "$(TORCH_CPU)"; \
	else echo "$(TORCH_CPU_INDEX) did not answer: $(TORCH_CPU) from the wheels pip finds without it"; \
	     $(BIN)/python -m pip install -q --retries 0 "$(TORCH_CPU)" || { echo "no $(TORCH_CPU) wheel found: reach" \
	     "$(TORCH_CPU_INDEX) (or set TORCH_CPU_INDEX to a mirror) or put the wheel where pip finds it"; exit 1; }; fi
	$(BIN)/python -m pip install -q "$(TORCH_CPU)" $(TEST_FRAMEWORKS) -e ".[test]"
	@touch $@

$(TOOLS)/python:
	$(PYTHON) -m venv .venv-tools

.venv-tools/.ready: $(TOOLS)/python pyproject.toml
	$(TOOLS)/python -m pip install -q $(TOOL_PINS) -e .
	@touch $@

# The main job on the shipped example, with no framework installed: look, plan, convert, prove the values.
demo: $(VENV)/.core
	$(BIN)/bridge inspect examples/tiny-bert/
	$(BIN)/bridge check examples/tiny-bert/ --to pytorch
	$(BIN)/bridge convert examples/tiny-bert/ --to pytorch -o build/tiny-bert-pytorch --force
	$(BIN)/bridge verify examples/tiny-bert/ build/tiny-bert-pytorch --no-forward
	@echo "verify ran with --no-forward: values only. With torch, tensorflow and transformers in the venv (make test"
	@echo "installs them), drop --no-forward to compare a forward pass too. Run bridge as $(BIN)/bridge, or activate"
	@echo "the venv (. $(BIN)/activate): a plain 'bridge' may be iproute2's; 'ckpt-bridge' is the same command."

# Both cores (more where there are more, up to 8: each worker holds TensorFlow and torch, about 1.5 GB); tests that
# share a file or a port are kept on one worker by `xdist_group` (--dist loadgroup).
TEST_WORKERS ?= auto
PYTEST       := $(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 8 --dist loadgroup

test: $(VENV)/.test
	$(PYTEST)

# The inner loop: everything but the tests marked slow (docs/development.md): about a minute on 2 idle cores.
test-fast: $(VENV)/.test
	$(PYTEST) -m "not slow"

lint: .venv-tools/.ready
	$(TOOLS)/ruff check bridge tf_side pt_side tests bench examples
	$(TOOLS)/ruff format --check bridge tf_side pt_side tests bench examples

typecheck: .venv-tools/.ready
	$(TOOLS)/mypy bridge tf_side pt_side

# Build the sdist and wheel, install the wheel alone in a fresh venv, run the main job from outside the checkout.
wheel-smoke:
	PYTHON=$(PYTHON) bash .ci/wheel-smoke

ci: lint typecheck test wheel-smoke

bench: $(VENV)/.test
	$(BIN)/python bench/bench_inspect.py
	$(BIN)/python bench/bench_convert.py
	$(BIN)/python bench/bench_t5.py
	$(BIN)/python bench/bench_dcp.py
	$(BIN)/python bench/bench_large.py
	$(BIN)/python bench/bench_unused.py

# 10,000 damaged files of every format through inspect/check, each under 2 GB of address space and a time limit:
# prints the counts of exit codes 0/1/2/3, tracebacks, timeouts, memory and crashes (tests/fuzz/campaign.py).
fuzz: $(VENV)/.test
	$(BIN)/python tests/fuzz/campaign.py --cases 10000

clean:
	rm -rf $(VENV) .venv-tools .pytest_cache
