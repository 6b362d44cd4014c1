# madoguchi: the two commands of the README, and their setup steps.
# Python packages come from uv.lock (exact versions); uv itself is bootstrapped with pip.

PYTHON ?= python3
VENV   := .venv
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.8

.PHONY: chat serve test lint screenshots setup setup-dev ingest eval clean

## make chat: set up, load the sample knowledge base, open the terminal chat (the main job)
chat: setup
	$(VENV)/bin/madoguchi chat

## make serve: set up and start the web chat + API on http://127.0.0.1:8000
serve: setup
	$(VENV)/bin/madoguchi serve

## make lint: ruff, the import contracts (import-linter: core and knowledge never import capabilities or
## integrations; capabilities never import an integration or each other's chat modules) and mypy
lint: setup-dev
	$(VENV)/bin/ruff check bot handlers integrations knowledge tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## make test: lint first, then start a throwaway PostgreSQL and install Chromium when possible, run the suite
test: setup-dev lint
	@PG_URL="$${MADOGUCHI_TEST_PG_URL:-$$(scripts/start-test-postgres.sh 2>/dev/null || true)}"; \
	if [ -z "$$PG_URL" ]; then echo "note: no PostgreSQL server; PostgreSQL tests will be skipped"; fi; \
	scripts/install-test-browser.sh >/dev/null 2>&1 || echo "note: no Chromium; the browser test will be skipped"; \
	scripts/install-fonts.sh >/dev/null 2>&1 || echo "note: no Japanese font; the rich-menu image tests will be skipped"; \
	MADOGUCHI_TEST_PG_URL="$$PG_URL" $(VENV)/bin/python -m pytest -n 2 -q

## make screenshots: refresh docs/screenshots/*.png from the browser tests (make test keeps them in its tmp dirs)
screenshots: setup-dev
	scripts/install-test-browser.sh >/dev/null 2>&1 || true
	MADOGUCHI_SCREENSHOTS=docs MADOGUCHI_REQUIRE_BROWSER=1 $(VENV)/bin/python -m pytest -q \
		tests/test_web_chat_browser.py tests/test_staff_inbox_browser.py

## make eval: measure answers on the shared dev set (needs ../shared)
eval: setup
	MADOGUCHI_DATA_DIR=var/eval $(VENV)/bin/madoguchi knowledge ingest ../shared/corpus
	MADOGUCHI_DATA_DIR=var/eval $(VENV)/bin/madoguchi knowledge eval --questions ../shared/eval/dev.jsonl

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q uv==$(UV_VERSION)

# uv installs packages without bytecode, and where PYTHONDONTWRITEBYTECODE is set (containers, CI sandboxes)
# every process then compiles about 1,600 modules: 2.7 of the 4.8 CPU seconds a `madoguchi` command takes to
# start. So each setup compiles the venv's packages once after the lock changes (uv's --compile-bytecode does
# the whole venv, about 20 CPU seconds); checking on every run would cost about a second each time.
COMPILED = [ $(VENV)/.bytecode-$@ -nt uv.lock ] || { $(UV) sync --frozen --inexact --quiet --compile-bytecode $(1) \
	&& touch $(VENV)/.bytecode-$@; }

setup: $(UV)
	$(UV) sync --frozen --inexact --quiet
	@$(call COMPILED)

setup-dev: $(UV)
	$(UV) sync --frozen --inexact --quiet --extra dev --extra llm
	@$(call COMPILED,--extra dev --extra llm)

clean:
	rm -rf $(VENV) var .pytest_cache
