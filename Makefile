# Thin wrapper: create .venv, install the pinned toolchain, then call the moebook CLI.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Chapters run (and nbval re-runs them) this many at a time: the same bytes as one at a time.
JOBS   ?= 2
MATHJAX := _build/npm/node_modules/mathjax/es5

.PHONY: book test setup lint unit built chromium clean wheel

book: setup $(MATHJAX) wheel
	$(BIN)/moebook run --all --jobs $(JOBS)
	$(BIN)/moebook build

# The library as a wheel (pip wheel --no-deps on a copy of the sources), the lock beside it: _build/dist/.
wheel: setup
	$(BIN)/python -c "from moebook.coursework import build_wheel; print(build_wheel())"

# Checks of what the pipeline produced (tests/test_built.py: claims and captions; tests/test_browser.py:
# every page in headless Chromium with the network cut; tests/test_coursework.py: assignments graded from
# the executed chapters). The unit step leaves them out, so each runs once.
BUILT_TESTS := tests/test_built.py tests/test_browser.py tests/test_coursework.py

test: setup lint unit $(MATHJAX) chromium
	$(BIN)/moebook run --all --jobs $(JOBS)
	$(BIN)/moebook check --jobs $(JOBS)
	$(BIN)/moebook build --strict
	$(BIN)/python -m pytest -rs $(BUILT_TESTS)

# The same checks on a book already built with `moebook build`.
built: setup chromium
	$(BIN)/python -m pytest -rs $(BUILT_TESTS)

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
	$(BIN)/python -m pytest tests $(BUILT_TESTS:%=--ignore=%)

# Debian's chromium for the browser check: installed when missing and we are root with apt-get.
# Otherwise say so loudly; tests/test_browser.py then skips (and only it).
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get) for the browser check"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
	  || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y --no-install-recommends chromium >/dev/null; } \
	  || echo "*** WARNING: apt-get could not install chromium: the browser check will be SKIPPED ***"; \
	else echo "*** WARNING: no chromium, and installing it needs root and apt-get:" \
	          "the browser check will be SKIPPED ***"; fi

clean:
	rm -rf _build
