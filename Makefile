# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install the tested versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: sample the report's [2,2] classifier briefly and diagnose the chains
run: $(STAMP)
	$(BIN)/landscape sample --arch 2,2 --chains 16 --draws 5000 --seed 0 --out runs/quickstart.h5 --force
	$(BIN)/landscape diagnose runs/quickstart.h5

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/rw_vs_emcee.py
	$(BIN)/python bench/hmc.py

clean:
	rm -rf $(VENV) runs .pytest_cache
