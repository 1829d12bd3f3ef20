# Every target installs into .venv first when needed, so each is one command on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo reproduce nbs test test-slow bench lab docs packages readme check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir -e '.[dev]'
	@touch $(STAMP)

## The virtual environment .venv with iwm and its dev tools (nbdev, Jupyter, pytest)
install: $(STAMP)

## The main job on the embedded default: record Crafter clips, read them back, write runs/demo/
demo: $(STAMP) packages
	$(BIN)/iwm-demo --data data/crafter --out runs/demo

## The reference run behind the README's numbers: tiny for 60 min on CPU (small on a GPU), decoder, evaluation on held-out seeds, planning toward
## test goals of seeds of their own. GAME=minetest runs it in first person (runs/reference-minetest; needs `make packages`).
GAME ?= crafter
reproduce: $(STAMP)
	$(BIN)/iwm-reproduce --game $(GAME)

## Run every notebook in place and save it with its outputs (tools/nbs.py: the cells nbdev-test runs, and the
## quickstart's slow ones; then nbdev-clean). `python tools/nbs.py 30_decoder index` runs only those.
nbs: $(STAMP)
	$(BIN)/python tools/nbs.py --jobs 2

## Every quick test: the notebooks (nbdev-test); the docs site rendered into _docs/ from the stored outputs (nothing
## executed); tests/ (pytest), tests/test_docs.py on that site in headless Chromium. The notebooks run through
## tools/stale.py: nbdev-test, then a failure for any stored output that is not what the code prints now, and the
## stored notebooks put back as they were. With CI=true, also `check`.
test: $(STAMP) packages
	@if [ "$${CI:-}" = "true" ]; then $(MAKE) --no-print-directory check; fi
	$(BIN)/python tools/stale.py --n-workers 2
	$(BIN)/python tools/docs.py --out _docs
	IWM_DOCS=_docs $(BIN)/pytest -q tests

## The long tests: notebook cells marked `#| slow` and pytest tests marked slow
test-slow: $(STAMP) packages
	$(BIN)/nbdev-test --n-workers 2 --flags slow
	$(BIN)/pytest -q -m slow tests

## The benchmarks in bench/: video decoding, data loading, training, imagination and planning speed, first-person recording
bench: $(STAMP)
	$(BIN)/python bench/video.py
	$(BIN)/python bench/data.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/imagine.py
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/record.py

## JupyterLab on the notebooks
lab: $(STAMP)
	$(BIN)/jupyter lab nbs

## The documentation site in _docs/ from the notebooks' stored outputs, nothing executed: nbdev-docs where Quarto is
## installed, else tools/docs.py (nbdev's processing, then nbconvert)
docs: $(STAMP)
	@if command -v quarto >/dev/null 2>&1; then $(BIN)/nbdev-docs; else $(BIN)/python tools/docs.py --out _docs; fi

## The system packages the tests and the recorders need, installed with apt when missing: Debian's chromium (headless, for
## tests/test_docs.py), npm (tools/docs.py), minetest and xvfb (the first-person game and its screen, iwm.minetest)
packages:
	@pkgs=; \
	if ! { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null || command -v google-chrome >/dev/null; }; then pkgs=" chromium"; fi; \
	if ! command -v npm >/dev/null; then pkgs="$$pkgs npm"; fi; \
	if ! { command -v minetest >/dev/null || [ -x /usr/games/minetest ]; }; then pkgs="$$pkgs minetest"; fi; \
	if ! command -v Xvfb >/dev/null; then pkgs="$$pkgs xvfb"; fi; \
	if [ -n "$$pkgs" ]; then \
	  sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
	  echo "installing$$pkgs"; $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$pkgs; \
	fi

## README.md from the notebooks (tools/readme.py)
readme: $(STAMP)
	$(BIN)/python tools/readme.py

## Fails when the notebooks, the library and README.md disagree, a notebook is not clean, or a notebook's stored
## outputs are incomplete or hold an error (tools/nbs.py --check)
check: $(STAMP)
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/python tools/readme.py
	@changed=$$(git status --porcelain --untracked-files=all -- iwm nbs README.md); \
	if [ -n "$$changed" ]; then echo "nbdev-export / nbdev-clean / tools/readme.py changed files:"; echo "$$changed"; \
	  git --no-pager diff --stat -- iwm nbs README.md; exit 1; fi
	$(BIN)/python tools/nbs.py --check

## Remove what the docs build and the tests leave: _docs/, nbdev's _proc/, the npm cache
clean:
	rm -rf _docs _proc .docs_cache .pytest_cache
