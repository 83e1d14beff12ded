# genkit developer commands; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers: many tests start genkit in a subprocess, whose imports of PyTorch and
# Lightning (~7 s) use one core. The SLURM tests share one local cluster: they run afterwards,
# in one process (the cluster's start and stop are theirs alone).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS)

.DEFAULT_GOAL := help
.PHONY: help install browser train test test-fast lint format bench docs clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install genkit with its dev tools (quick when done already)

train: install ## train the default job (the GAN on MNIST); extra overrides: make train ARGS="trainer.max_epochs=1"
	$(BIN)/genkit train $(ARGS)

browser: ## headless Chromium and chromedriver (Debian's apt), for the page test of genkit serve; never fails
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get install -y -qq chromium chromium-driver || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }; } \
	  >/dev/null 2>&1 || echo "make browser: could not install chromium (needs root and apt): the page test of genkit serve skips"

test: install browser ## build the docs site (--strict), then run the whole test suite (needs no GPU; GPU tests skip themselves)
	$(BIN)/mkdocs build --strict --site-dir site
	$(PYTEST) -m "not slurm" $(PYTEST_ARGS)
	$(BIN)/pytest -m slurm $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: PYTEST_ARGS selected no SLURM test

test-fast: install ## only the fast tier (no real data sets, no multi-process runs)
	$(PYTEST) -m "not slow and not slurm" $(PYTEST_ARGS)

bench: install ## time the GAN on MNIST and the GPT on Tiny Shakespeare against the hand-written loops
	$(BIN)/genkit bench model=gan data=mnist $(ARGS)
	$(BIN)/genkit bench model=lm data=tinyshakespeare $(ARGS)

docs: install ## build the documentation site into site/ (--strict: a broken link or a missing page fails)
	$(BIN)/mkdocs build --strict --site-dir site

lint: install ## ruff lint and format check; the import layers (import-linter, pyproject.toml)
	$(BIN)/ruff check genkit tests scripts hydra_plugins
	$(BIN)/lint-imports
	$(BIN)/ruff format --check genkit tests scripts hydra_plugins

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix genkit tests scripts hydra_plugins
	$(BIN)/ruff format genkit tests scripts hydra_plugins

clean: ## remove caches, local run outputs and the built site (not the virtualenv)
	rm -rf outputs multirun site .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
