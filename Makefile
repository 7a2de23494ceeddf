# Thin wrapper: create .venv, install the pinned toolchain, then call the moebook CLI.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test setup lint unit clean

book: setup
	$(BIN)/moebook run --all
	$(BIN)/moebook build

test: setup lint unit
	$(BIN)/moebook run --all
	$(BIN)/moebook check
	$(BIN)/moebook build --strict

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check moe_lib moebook tests

unit: setup
	$(BIN)/python -m pytest tests

clean:
	rm -rf _build
