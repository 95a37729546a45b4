# The two commands of the README: `make repro` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make stability SEED_SETS="1 2 3 7" JOBS=2 [STAGES="zero_init idinit"]`: any seed sets >= 1,
# N stage runs at a time (each with its conf's threads), all claim stages unless STAGES is set.
SEED_SETS ?= 1 2 3
JOBS ?= 1
STAGES ?=
# `make paper CLUSTER=slurm` / `make stability CLUSTER=slurm|local`: each (stage, seed set) one
# submitit job in its own clone at HEAD, back as a DVC experiment (initrepro.core.cluster);
# CLUSTER_ARGS="--slurm-partition gpu --gpus-per-node 1 --timeout-min 720" go to it as they are;
# `make paper` runs seed set 0 there, or PAPER_SEED_SETS="0 1 2 3".
CLUSTER ?=
CLUSTER_ARGS ?=
# Stage commands call `python`: the one in .venv.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test paper data report stability deps plots figures clean-venv

# dvc.yaml's deps follow the imports first (initrepro.core.deps), then DVC reruns what changed.
repro: $(STAMP) deps
	$(BIN)/dvc repro

deps: $(STAMP)
	$(BIN)/python -m initrepro.core.deps --write

test: $(STAMP)
	$(BIN)/pytest

# Every dataset a paper conf names, into data/ (torchvision's downloaders), verified by MD5;
# offline it fails in one line. `make data DATASETS=cifar10` fetches only those.
DATASETS ?=
data: $(STAMP)
	$(BIN)/python -m initrepro.data_files fetch $(DATASETS)

# The papers' scale; needs a GPU and the datasets under data/ (see README).
paper: $(STAMP)
	$(if $(CLUSTER),$(BIN)/python -m initrepro.core.cluster --executor $(CLUSTER) --profile paper --seed-sets $(or $(PAPER_SEED_SETS),0) $(if $(STAGES),--stages $(STAGES)) $(CLUSTER_ARGS),$(BIN)/dvc exp run -S profile=paper)

report: $(STAMP)
	$(BIN)/python -m initrepro.core.report
	$(BIN)/python -m initrepro.core.claim_index

# Every figure redrawn from the committed measurements (results/<stage>/measurements.json),
# no claim stage rerun: after restyling a figure.
figures: $(STAMP)
	$(BIN)/python -m initrepro.core.figures

# Every figure on one page: dvc_plots/index.html.
plots: $(STAMP)
	$(BIN)/dvc plots show

# The verdicts under seed sets 1-3: each claim stage run into reports/seed_sets/<k>/ (the
# workspace's records stay as they are), then reports/stability.{md,json} and the README's
# stability column. The report is written even when a run failed; make then fails.
stability: $(STAMP)
	$(if $(CLUSTER),$(BIN)/python -m initrepro.core.cluster --executor $(CLUSTER) --seed-sets $(SEED_SETS) --into-seed-sets $(if $(filter local,$(CLUSTER)),--max-parallel $(JOBS)) $(CLUSTER_ARGS),$(BIN)/python -m initrepro.core.stability run --seed-sets $(SEED_SETS) --jobs $(JOBS)) $(if $(STAGES),--stages $(STAGES)); status=$$?; \
	$(BIN)/python -m initrepro.core.stability && $(BIN)/python -m initrepro.core.report && exit $$status

# (Re)build the environment whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

clean-venv:
	rm -rf $(VENV)
