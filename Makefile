# Two set-up commands matter: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

# torch first and alone, pinned: any later resolver run then finds it satisfied and never
# reaches for a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==$$(grep -E '^torch==' requirements.lock | cut -d= -f3)"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	FORECAST_ENV=development $(BIN)/python -m training.cli.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The suite without the `slow` end-to-end tests (servers, subprocess CLIs): for the edit loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy models service training
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layers.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.ett --family all --horizon 24,96 --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mlruns .demo
