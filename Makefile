# Entry points: `make test` (the CI command) and `make demo` (the main job on synthetic data).
# Both create .venv and install requirements.txt on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
SHARED_NLTK := $(abspath ../shared/nltk_data)
LOCAL_NLTK := $(abspath $(VENV)/nltk_data)
export JAX_PLATFORMS ?= cpu
export JAX_COMPILATION_CACHE_DIR ?= $(abspath .jax_cache)
# NLTK data (POS tagger, WordNet, punkt): ../shared/nltk_data when present, else downloaded
# once into .venv/nltk_data by `make nltk-data`.
export NLTK_DATA ?= $(if $(wildcard $(SHARED_NLTK)),$(SHARED_NLTK),$(LOCAL_NLTK))

.PHONY: venv nltk-data test lint demo reproduce clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

nltk-data: $(STAMP)
	@if [ ! -d "$(NLTK_DATA)/taggers" ]; then \
	  echo "downloading NLTK data into $(NLTK_DATA)"; \
	  $(PY) -m nltk.downloader -d "$(NLTK_DATA)" averaged_perceptron_tagger_eng wordnet punkt_tab; \
	fi

# Two pytest workers (pytest-xdist), one test file per worker at a time: much of the suite
# is single-threaded compilation and subprocess start-up, so 2 workers on 2 cores finish
# sooner than one; `make test TEST_WORKERS=0` runs serially. `--no-loadscope-reorder` keeps
# the collection order of tests/suite_order.py (longest files first, so both workers end
# together) instead of xdist's most-tests-first.
TEST_WORKERS ?= 2
XDIST_ARGS := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: $(STAMP) nltk-data
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),$(XDIST_ARGS)) tests

lint: $(STAMP)
	$(PY) -m ruff check .

demo: $(STAMP) nltk-data
	$(PY) launch.py --config configs/pipeline/synthetic.py --workdir demo_out

# The report's Tables 1 and 2 over seeds (configs/pipeline/reproduce.py; sized for about an hour
# on 2 idle CPU cores, the measured time is in the README). Smoke run with 2 seeds and fewer steps:
# `make reproduce REPRODUCE_ARGS=size=quick REPRODUCE_DIR=reproduce_quick`.
REPRODUCE_ARGS ?=
REPRODUCE_DIR ?= reproduce_out
reproduce: $(STAMP) nltk-data
	$(PY) launch.py --config configs/pipeline/reproduce.py$(if $(REPRODUCE_ARGS),:$(REPRODUCE_ARGS)) \
	  --workdir $(REPRODUCE_DIR)

clean:
	rm -rf .jax_cache .pytest_cache
