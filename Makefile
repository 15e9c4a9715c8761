# make lab   : create .venv, install, start the database, serve JupyterLab on this folder
#              (root included: --allow-root is added then), opening notebooks/00_setup.ipynb
# make update: git pull, with notebooks you ran (their outputs do not count as changes)
# make test  : same set-up, then the whole test suite (unit tests and every notebook);
#              make test LAYERS=db (or unit, full, "not full") runs one layer;
#              JOBS=1 runs it in one process (default: one worker per core)
# make bench : measure start, seeding, reset, checks and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test bench db clean notebook-filter update

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

db: $(STAMP)
	$(BIN)/workbook db up

# JupyterLab saves outputs into the notebooks; this git filter keeps them out of `git status`
# and `git pull`. Skipped quietly outside a git checkout (a zip download).
notebook-filter:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git config filter.notebook-strip.clean "$(PYTHON) workbook/strip.py" && \
	  git config filter.notebook-strip.smudge cat; fi

# `git pull` after running notebooks. Their outputs are not changes (the filter strips them), but
# git trusts file sizes until `git add` records the files again; real edits of yours get staged.
update: notebook-filter
	git add -- 'notebooks/*.ipynb'
	git pull

lab: db notebook-filter
	$(BIN)/workbook reset 01
	$(BIN)/python -m workbook.serve

# LAYERS picks test layers by marker (tests/conftest.py): unit, db, full; empty runs them all.
# JOBS: pytest-xdist workers for the unit and db layers, each a learner of its own
# (tests/conftest.py); the Docker server has one learner database, so one process there.
# Their learners' databases are at the proof scale 0.1 too (WORKBOOK_SCALE): the same template
# chain the checks copy, so no worker seeds a million findings; the learning scale is the full
# layer's. Then, in one process, the tests marked serial (short deadlines, server-wide state)
# and the full layer; the scale-equivalence test reads the first pass's verdicts from $$log.
# pytest's exit status 5 is "no test selected" (LAYERS=unit has no serial test): not a failure.
LAYERS ?=
NPROC := $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1)
JOBS ?= $(if $(filter docker,$(WORKBOOK_DB)),1,$(NPROC))
ONLY = $(if $(strip $(LAYERS)),($(LAYERS)) and ,)
test: db
	@log="$$(mktemp)"; trap 'rm -f "$$log"' EXIT; export WORKBOOK_TRACK=solutions; \
	set -x; \
	WORKBOOK_SCALE="$${WORKBOOK_SCALE:-0.1}" WORKBOOK_VERDICT_LOG="$$log" $(BIN)/pytest -n $(if $(filter 1,$(JOBS)),0,$(JOBS)) \
	  -m "$(ONLY)not full and not serial" tests; workers=$$?; \
	WORKBOOK_PROOF_VERDICTS="$$log" $(BIN)/pytest -m "$(ONLY)(full or serial)" \
	  tests --nbval-lax --nbval-current-env notebooks; alone=$$?; \
	set +x; [ "$$workers$$alone" != 55 ] || exit 5; \
	for s in $$workers $$alone; do [ $$s = 0 ] || [ $$s = 5 ] || exit $$s; done

bench: db
	$(BIN)/python -m workbook.bench

clean:
	rm -rf $(VENV) .workbook
