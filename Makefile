# The two commands of the README: `make repro` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Stage commands call `python`: the one in .venv.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test paper report clean-venv

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/pytest

# The papers' scale; needs a GPU and the datasets under data/ (see README).
paper: $(STAMP)
	$(BIN)/dvc exp run -S profile=paper

report: $(STAMP)
	$(BIN)/python -m initrepro.report

# (Re)build the environment whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

clean-venv:
	rm -rf $(VENV)
