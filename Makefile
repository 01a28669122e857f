# ssmrl: `make reproduce` rebuilds the book at the quick profile, `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
NOTEBOOKS := $(basename $(notdir $(wildcard notebooks/*.ipynb)))
ENVS := hopper halfcheetah walker2d
# Minari's local store lives in the repository (git-ignored) unless the caller points elsewhere.
export MINARI_DATASETS_PATH ?= $(CURDIR)/data/minari

.PHONY: setup data policies notebooks book reproduce test lint unit smoke book-check browser \
	browser-test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

setup: $(STAMP)

# D4RL's recipes (random, medium, medium-replay; expert and medium-expert where a policy reached
# that level, otherwise skipped with the reason) from the behavior policies under data/policies/,
# DATA_JOBS datasets at a time. Datasets already in the store are kept.
DATA_JOBS ?= 2
data: setup  ## every dataset the chapters train on
	$(BIN)/ssmrl data build --env all --quality all --if-missing --if-available --jobs $(DATA_JOBS)

# Train (or resume, from data/policies/<env>/state/) the behavior policies: hours on a CPU. The
# three environments train in parallel (one torch thread each), then each exports its replay up
# to the medium checkpoint (skipped, with a message, where medium is not reached yet).
POLICY_STEPS ?= 1000000
POLICY_JOBS ?= 3
policies: setup
	$(MAKE) --no-print-directory -j $(POLICY_JOBS) $(addprefix policy-,$(ENVS))

policy-%: setup
	nice -n 19 $(BIN)/ssmrl data train-policy --env $* --steps $(POLICY_STEPS)
	$(BIN)/ssmrl data export-replay --env $* || echo "$*: replay not exported (see above)"

notebooks: data  ## execute every notebook with papermill into book/
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/ssmrl notebook $$nb -p profile $(PROFILE) || exit 1; \
	done

# _config.yml and _toc.yml (top level) render the pages and executed chapters in book/.
book: setup  ## the HTML book, at _build/html/index.html
	$(BIN)/jupyter-book build . -W

reproduce: notebooks book

lint: setup
	$(BIN)/ruff check .

unit: setup
	$(BIN)/pytest -q

# Every notebook at the smoke profile, in a scratch directory (runs and datasets too), rendered
# with the book's pages (everything in book/ but the executed chapters) into .smoke/smoke/; then
# the committed chapters into .smoke/committed/. Warnings are errors in both.
SMOKE_DIR := $(CURDIR)/.smoke
SMOKE_SITE := $(SMOKE_DIR)/site
smoke: setup
	rm -rf $(SMOKE_DIR) && mkdir -p $(SMOKE_SITE)/book
	cp _config.yml _toc.yml $(SMOKE_SITE)/
	find book -mindepth 1 -maxdepth 1 ! -name '*.ipynb' ! -name '.*' ! -name _build \
	  -exec cp -r {} $(SMOKE_SITE)/book/ \;
	for nb in $(NOTEBOOKS); do \
	  SSMRL_RUNS_DIR=$(SMOKE_DIR)/runs MINARI_DATASETS_PATH=$(SMOKE_DIR)/minari SSMRL_OFFLINE=1 \
	    $(BIN)/ssmrl notebook $$nb -p profile smoke --output-dir $(SMOKE_SITE)/book || exit 1; \
	done
	$(BIN)/jupyter-book build $(SMOKE_SITE) -W --path-output $(SMOKE_DIR)/smoke > $(SMOKE_DIR)/smoke.log 2>&1 \
	  || (cat $(SMOKE_DIR)/smoke.log; exit 1)

book-check: setup
	mkdir -p $(SMOKE_DIR)
	$(BIN)/jupyter-book build . -W --path-output $(SMOKE_DIR)/committed > $(SMOKE_DIR)/committed.log 2>&1 \
	  || (cat $(SMOKE_DIR)/committed.log; exit 1)

# Debian's Chromium and its chromedriver, for the browser test: installed with apt-get when
# missing (CI runs as root; elsewhere install the two packages yourself).
browser:
	@command -v chromium > /dev/null && command -v chromedriver > /dev/null || { \
	  echo "installing Debian's chromium and chromium-driver for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver fonts-liberation > /dev/null; }

# Every page of both builds in headless Chromium (tests/browser): raw TeX, stray reprs, broken
# images and links, console errors, content wider than the page. A PNG of each page goes to
# .smoke/screenshots/. Run after smoke and book-check.
browser-test: setup browser
	$(BIN)/pytest -q tests/browser --book-html $(SMOKE_DIR)/committed/_build/html \
	  --screenshots $(SMOKE_DIR)/screenshots/committed
	$(BIN)/pytest -q tests/browser/test_book_pages.py::test_book_page \
	  --book-html $(SMOKE_DIR)/smoke/_build/html \
	  --screenshots $(SMOKE_DIR)/screenshots/smoke

test: lint unit smoke book-check browser-test

bench: setup  ## speed/memory benchmarks; results under benchmarks/results/
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/train_step.py --threads 1 --out benchmarks/results/train_step_cpu_1thread.json
	$(BIN)/python benchmarks/scan_vs_rnn.py
	$(BIN)/python benchmarks/context_scaling.py
	$(BIN)/python benchmarks/ppo_throughput.py
	$(BIN)/python benchmarks/env_step.py
	$(BIN)/python benchmarks/dataset_build.py --jobs $(DATA_JOBS)

clean:
	rm -rf $(SMOKE_DIR) _build
