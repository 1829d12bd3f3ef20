# Every target installs into .venv first when needed, so each is one command on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow bench lab docs chromium readme check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: record Crafter clips, read them back, write runs/demo/
demo: $(STAMP)
	$(BIN)/iwm-demo --data data/crafter --out runs/demo

## The reference run behind the README's numbers: tiny for 60 min on CPU (small on a GPU), decoder, evaluation and planning on held-out seeds
reproduce: $(STAMP)
	$(BIN)/iwm-reproduce --out runs/reference --data data/reference

## Every quick test: the notebooks (nbdev-test); every page of the docs site rendered into _docs/ (the index and the
## viewer executed in full, the others as nbdev's docs build runs them); tests/ (pytest), tests/test_docs.py on that
## site in headless Chromium. With CI=true, also `check`.
test: $(STAMP) chromium
	@if [ "$${CI:-}" = "true" ]; then $(MAKE) --no-print-directory check; fi
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python tools/docs.py --out _docs --no-exec --execute index 50_viewer
	IWM_DOCS=_docs $(BIN)/pytest -q tests

## The long tests: notebook cells marked `#| slow` and pytest tests marked slow
test-slow: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2 --flags slow
	$(BIN)/pytest -q -m slow tests

bench: $(STAMP)
	$(BIN)/python bench/video.py
	$(BIN)/python bench/data.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/imagine.py
	$(BIN)/python bench/plan.py

lab: $(STAMP)
	$(BIN)/jupyter lab nbs

## The documentation site in _docs/: nbdev-docs where Quarto is installed, else tools/docs.py (no Quarto; runs every notebook)
docs: $(STAMP)
	@if command -v quarto >/dev/null 2>&1; then $(BIN)/nbdev-docs; else $(BIN)/python tools/docs.py --out _docs; fi

## Headless Chromium for tests/test_docs.py (Debian's chromium package), and npm for tools/docs.py, when missing
chromium:
	@pkgs=; \
	if ! { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null || command -v google-chrome >/dev/null; }; then pkgs=" chromium"; fi; \
	if ! command -v npm >/dev/null; then pkgs="$$pkgs npm"; fi; \
	if [ -n "$$pkgs" ]; then \
	  sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
	  echo "installing$$pkgs"; $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$pkgs; \
	fi

readme: $(STAMP)
	$(BIN)/python tools/readme.py

## Fails when the notebooks, the library and README.md disagree, or a notebook is not clean
check: $(STAMP)
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/python tools/readme.py
	@changed=$$(git status --porcelain --untracked-files=all -- iwm nbs README.md); \
	if [ -n "$$changed" ]; then echo "nbdev-export / nbdev-clean / tools/readme.py changed files:"; echo "$$changed"; \
	  git --no-pager diff --stat -- iwm nbs README.md; exit 1; fi

clean:
	rm -rf _docs _proc .docs_cache .pytest_cache
