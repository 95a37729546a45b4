# The two commands of the README: `make repro` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The claim stages of dvc.yaml (the report stage writes into this workspace, not an experiment's copy).
CLAIM_STAGES := $(filter-out report,$(shell sed -n 's/^  \([a-z_0-9]*\):.*/\1/p' dvc.yaml))
# Stage commands call `python`: the one in .venv.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test paper report stability clean-venv

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/pytest

# The papers' scale; needs a GPU and the datasets under data/ (see README).
paper: $(STAMP)
	$(BIN)/dvc exp run -S profile=paper

report: $(STAMP)
	$(BIN)/python -m initrepro.report

# The verdicts under seed sets 1-3, each a DVC experiment run in a temporary copy (the
# workspace stays as it is), then reports/stability.md and the README's stability column.
stability: $(STAMP)
	for k in 1 2 3; do $(BIN)/dvc exp run --temp --force --name seed-set-$$k -S seed_set=$$k $(CLAIM_STAGES) || exit 1; done
	$(BIN)/python -m initrepro.stability
	$(BIN)/dvc repro report

# (Re)build the environment whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

clean-venv:
	rm -rf $(VENV)
