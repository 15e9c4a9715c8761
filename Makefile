# make lab   : create .venv, install, start the database, open JupyterLab on notebooks/
# make test  : same set-up, then the whole test suite (unit tests and every notebook)
# make bench : measure start, seeding, reset, checks and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test bench db clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

db: $(STAMP)
	$(BIN)/workbook db up

lab: db
	$(BIN)/workbook reset 01
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter lab notebooks/

test: db
	WORKBOOK_TRACK=solutions $(BIN)/pytest tests --nbval-lax --nbval-current-env notebooks

bench: db
	$(BIN)/python -m workbook.bench

clean:
	rm -rf $(VENV) .workbook
