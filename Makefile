# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install the tested versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dask]'
	touch $(STAMP)

install: $(STAMP)

## run: the rotation experiment with its defaults (replica exchange, converged; ~10 minutes on 2 idle cores); prints where REPORT.md is
run: $(STAMP)
	$(BIN)/landscape rotation --out runs/rotation --force

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dask,bench]'
	$(BIN)/python bench/rw_vs_emcee.py
	$(BIN)/python bench/hmc.py
	$(BIN)/python bench/dss.py

clean:
	rm -rf $(VENV) runs .pytest_cache
