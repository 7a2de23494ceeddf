# Thin wrapper: create .venv, install the pinned toolchain, then call the moebook CLI.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX := _build/npm/node_modules/mathjax/es5

.PHONY: book test setup lint unit clean

book: setup $(MATHJAX)
	$(BIN)/moebook run --all
	$(BIN)/moebook build

test: setup lint unit $(MATHJAX)
	$(BIN)/moebook run --all
	$(BIN)/moebook check
	$(BIN)/moebook build --strict

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# MathJax served from the book itself, so pages render math offline. Without npm the book
# falls back to MathJax from its CDN.
$(MATHJAX):
	@if command -v npm >/dev/null; then \
	  mkdir -p _build/npm && npm install --prefix _build/npm --silent --no-audit --no-fund mathjax@3.2.2 \
	    || echo "npm install failed: the book will load MathJax from its CDN"; \
	else echo "npm not found: the book will load MathJax from its CDN"; fi

lint: setup
	$(BIN)/ruff check moe_lib moebook tests

unit: setup
	$(BIN)/python -m pytest tests

clean:
	rm -rf _build
