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

.PHONY: setup data policies policies-background policies-swap notebooks book reproduce test lint unit \
	smoke book-check browser browser-test bench clean campaign campaign-status campaign-save \
	gpu-check gpu-check-prepare gpu-check-restore gpu-check-dry-run

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

# Train (or resume, from $(POLICIES_DIR)/<env>/state/) the behavior policies: hours on a CPU.
# The three environments train in parallel (one torch thread each, nice POLICY_NICE), each up to its
# POLICY_STEPS_<env> (POLICY_STEPS overrides all three), evaluating every POLICY_EVAL_EVERY steps
# on 10 mean-action and 50 sampled-action episodes (every 5k: scores near medium jump by 5-27
# points per 10k steps, the ±10 % medium band is 8-12 points wide); then each exports its replay
# up to the medium checkpoint (skipped, with a message, where medium is not reached yet).
# Rerunning resumes (with the same settings: the committed policies were evaluated every 10k).
POLICIES_DIR ?= $(CURDIR)/data/policies
POLICY_STEPS ?=
POLICY_STEPS_hopper ?= 400000
POLICY_STEPS_halfcheetah ?= 150000
POLICY_STEPS_walker2d ?= 1000000
POLICY_EVAL_EVERY ?= 5000
POLICY_JOBS ?= 3
# 10, as the campaign: the policies are the offline campaign's critical path (its datasets)
POLICY_NICE ?= 10
policies: setup
	$(MAKE) --no-print-directory -o $(STAMP) -j $(POLICY_JOBS) $(addprefix policy-,$(ENVS))

policy-%: setup
	OMP_NUM_THREADS=1 nice -n $(POLICY_NICE) $(BIN)/ssmrl data train-policy --env $* \
	  --steps $(or $(POLICY_STEPS),$(POLICY_STEPS_$*)) --eval-every $(POLICY_EVAL_EVERY) \
	  --dir $(POLICIES_DIR)/$*
	nice -n $(POLICY_NICE) $(BIN)/ssmrl data export-replay --env $* --dir $(POLICIES_DIR)/$* \
	  || echo "$*: replay not exported (see above)"

# The same, detached (setsid nohup: it survives the terminal and the session that started it),
# one process group per environment, logging to $(POLICIES_DIR)/<env>.log, its id in <env>.pid
# (stop one with `kill -- -$$(cat <env>.pid)`). An environment still training is left alone;
# rerun to resume the others.
policies-background: setup
	mkdir -p $(POLICIES_DIR)
	@for env in $(ENVS); do \
	  pid=$(POLICIES_DIR)/$$env.pid; \
	  if [ -f $$pid ] && kill -0 $$(cat $$pid) 2>/dev/null; then \
	    echo "$$env: still training (pid $$(cat $$pid)), log $(POLICIES_DIR)/$$env.log"; \
	    continue; \
	  fi; \
	  SSMRL_BACKGROUND=1 setsid nohup $(MAKE) --no-print-directory -o $(STAMP) policy-$$env \
	    POLICIES_DIR=$(POLICIES_DIR) >> $(POLICIES_DIR)/$$env.log 2>&1 < /dev/null & \
	  echo $$! > $$pid; \
	  echo "$$env: started, pid $$!, log $(POLICIES_DIR)/$$env.log"; \
	done

# Replace the committed policies (data/policies/<env>/) with those trained in POLICIES_DIR: their
# training record, evaluations, checkpoints and replay export. The training state stays where it
# trained (committed there, so a training towards expert resumes from it; not copied, since every
# copy of tens of MB counts against a submission's size). An environment without a replay export
# (medium not reached yet) is kept. Then `make data` rebuilds every dataset whose recipe now
# takes other checkpoints, replay transitions or (sampled) actions, and removes those whose
# recipe the new policy does not reach. Swapping again later brings newer checkpoints.
policies-swap:
	@if [ "$(abspath $(POLICIES_DIR))" = "$(CURDIR)/data/policies" ]; then \
	  echo "policies-swap: set POLICIES_DIR to where the new policies were trained"; exit 2; fi
	@for env in $(ENVS); do \
	  src=$(POLICIES_DIR)/$$env; dst=data/policies/$$env; \
	  if [ ! -f $$src/replay_medium.npz ]; then \
	    echo "$$env: kept ($$src has no replay_medium.npz: medium not reached, or run" \
	      "ssmrl data export-replay --env $$env --dir $$src)"; continue; fi; \
	  rm -rf $$dst/checkpoints $$dst/evaluations.csv $$dst/training.json \
	    $$dst/replay_medium.npz $$dst/state; \
	  mkdir -p $$dst && cp -r $$src/training.json $$src/evaluations.csv $$src/checkpoints $$dst/ \
	    && mv $$src/replay_medium.npz $$dst/; \
	  echo "$$env: swapped in up to step $$(tail -n 1 $$dst/evaluations.csv | cut -d, -f1)" \
	    "(its training state stays in $$src)"; \
	done
	@echo "next: git add data/policies; make data; rerun the offline chapters"

# Where runs are computed: EXECUTOR=local (JOBS runs at a time, default the number of cores) or
# EXECUTOR=ray (a local Ray instance, or the cluster at $RAY_ADDRESS); see the rerun page.
EXECUTOR ?= local
JOBS ?=
EXECUTOR_FLAGS = --executor $(EXECUTOR) $(if $(JOBS),--jobs $(JOBS))
notebooks: data  ## execute every notebook with papermill into book/
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/ssmrl notebook $$nb -p profile $(PROFILE) $(EXECUTOR_FLAGS) || exit 1; \
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
	$(BIN)/python benchmarks/bsuite_scaling.py
	$(BIN)/python benchmarks/ppo_throughput.py
	$(BIN)/python benchmarks/env_step.py
	$(BIN)/python benchmarks/dataset_build.py --jobs $(DATA_JOBS)
	$(BIN)/python benchmarks/dataset_build.py --jobs $(DATA_JOBS) --other-kernels
	$(BIN)/python benchmarks/parallel_executor.py

# The campaign (campaign/plan.yaml) in the background (a session of its own whose autogroup
# takes its niceness, so it yields the CPU to interactive work), CAMPAIGN_JOBS runs at once, one
# torch thread each; it resumes where it stopped, so rerun it after any interruption.
# Finished milestones land in data/runs/ (commit them); the log is data/campaign/campaign.log.
CAMPAIGN_JOBS ?= 2
CAMPAIGN_NICE ?= 10
CAMPAIGN_LOG := data/campaign/campaign.log
campaign: data
	mkdir -p $(dir $(CAMPAIGN_LOG))
	SSMRL_BACKGROUND=1 setsid nohup nice -n $(CAMPAIGN_NICE) $(BIN)/ssmrl campaign run \
	  --jobs $(CAMPAIGN_JOBS) --nice 0 \
	  >> $(CAMPAIGN_LOG) 2>&1 < /dev/null & \
	  echo "campaign started (pid $$!): log $(CAMPAIGN_LOG), progress: $(BIN)/ssmrl campaign status"

campaign-status: setup
	$(BIN)/ssmrl campaign status

# Stage the campaign's progress so that any clone resumes it (then `git commit`): the run
# store's results, and, force-added since git ignores them, the checkpoints a later milestone
# resumes from (`ssmrl campaign checkpoints`: runs stopped mid-way or waiting at an earlier
# milestone; DT about 10 MB, Decision Mamba about 6 MB each). Those of runs at the plan's end
# are untracked again. Every save adds the changed checkpoints to the repository's history:
# save once before a machine goes, not at every milestone.
campaign-save: setup
	git add data/runs
	$(BIN)/ssmrl campaign checkpoints | xargs -r git add -f --
	$(BIN)/ssmrl campaign checkpoints --finished | xargs -r git rm -q --cached --ignore-unmatch --

# The GPU check (README, "GPU check"). Here: prepare the payload (wheels for Python 3.12, the
# tracked files the check does not read moved out of the tree; prints its size), make the device
# call, restore. On the GPU machine: `make gpu-check` (bash benchmarks/gpu_check.sh; no venv).
# In CI the same script runs as a dry run on the CPU (tests/test_gpu_check.py, part of `unit`).
gpu-check-prepare: setup
	$(BIN)/python benchmarks/gpu_payload.py prepare

gpu-check-restore: setup
	$(BIN)/python benchmarks/gpu_payload.py restore

gpu-check:
	bash benchmarks/gpu_check.sh

gpu-check-dry-run: setup
	MINARI_DATASETS_PATH=$(SMOKE_DIR)/gpu-check/minari $(BIN)/python benchmarks/gpu_check.py \
	  --device cpu --dry-run --out-dir $(SMOKE_DIR)/gpu-check

clean:
	rm -rf $(SMOKE_DIR) _build
