# Entry points: `make test` (the CI command) and `make demo` (the main job on synthetic data).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
SHARED_NLTK := $(abspath ../shared/nltk_data)
export JAX_PLATFORMS ?= cpu
export JAX_COMPILATION_CACHE_DIR ?= $(abspath .jax_cache)
export NLTK_DATA ?= $(if $(wildcard $(SHARED_NLTK)),$(SHARED_NLTK),)

.PHONY: venv test lint demo clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff check .

demo: $(STAMP)
	$(PY) launch.py --config configs/pipeline/synthetic.py --workdir demo_out

clean:
	rm -rf .jax_cache .pytest_cache
