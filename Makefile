# Two commands on a fresh machine: `make run` and `make test`.
# Everything else (the venv, embedded PostgreSQL, Debian's chromium for the
# browser tests) is set up on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: vendor-js run test test-quick bench mutants lint db-up db-down migrate neon-setup keys-init keys-list keys-rotate keys-prune keys-revoke issuer proxy app clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The browser tests drive Debian's chromium (Playwright never downloads one).
$(CHROMIUM):
	@if [ "$$(id -u)" -eq 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive && apt-get update && apt-get install -y chromium; \
	else \
		echo "The browser tests need Debian's chromium: run 'sudo apt-get install chromium' once." >&2; exit 1; \
	fi

# The Data API tests also drive Supabase's postgrest-js, pinned in tests/data_api/js.
JS_TESTS := tests/data_api/js
JS_STAMP := $(JS_TESTS)/node_modules/.package-lock.json
$(JS_STAMP): $(JS_TESTS)/package-lock.json
	@if ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" -eq 0 ]; then \
			export DEBIAN_FRONTEND=noninteractive && apt-get update && apt-get install -y nodejs npm; \
		else \
			echo "The Data API tests need node and npm: run 'sudo apt-get install nodejs npm' once." >&2; exit 1; \
		fi; \
	fi
	npm ci --prefix $(JS_TESTS) --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# The Data API page's browser client is that same package, vendored (see app/static/vendor/).
vendor-js: $(JS_STAMP)
	cp $(JS_TESTS)/node_modules/@supabase/postgrest-js/dist/index.mjs app/static/vendor/postgrest-js.mjs

# DEMO=1 also creates the demo users alice@example.com and bob@example.com.
run: $(STAMP)
	$(PY) -m stack run $(if $(DEMO),--demo-users,)

test: $(STAMP) $(CHROMIUM) $(JS_STAMP)
	$(PY) -m pytest

# The inner loop: everything but the browser, load, resilience and supervisor suites
# (the slow suites are a handful of tests but half of the time). CI runs `make test`.
test-quick: $(STAMP) $(JS_STAMP)
	$(PY) -m pytest -m "not browser and not load and not resilience and not stack"

# The peer `make bench` measures the issuer against: node-oidc-provider, pinned in bench/peer.
PEER := bench/peer
PEER_STAMP := $(PEER)/node_modules/.package-lock.json
$(PEER_STAMP): $(PEER)/package-lock.json $(JS_STAMP)
	npm ci --prefix $(PEER) --no-audit --no-fund --loglevel=error
	touch $(PEER_STAMP)

bench: $(STAMP) $(PEER_STAMP)
	$(PY) -m bench

# Known security mutants, each against the tests that guard its check (not part of `make test`).
mutants: $(STAMP)
	$(PY) -m mutants

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

db-up: $(STAMP)
	$(PY) -m stack db up

db-down: $(STAMP)
	$(PY) -m stack db down

migrate: $(STAMP)
	$(PY) -m stack migrate

# Applies sql/ to the Neon database of DATABASE_URL (environment or .env); with
# NEON_API_KEY and NEON_PROJECT_ID registers the JWKS, and DATA_API=1 enables the Data API.
neon-setup: $(STAMP)
	$(PY) -m stack neon-setup $(if $(DATA_API),--data-api,)

proxy: $(STAMP)
	$(PY) -m stack proxy

keys-init: $(STAMP)
	$(PY) -m issuer keys init

keys-list: $(STAMP)
	$(PY) -m issuer keys list

keys-rotate: $(STAMP)
	$(PY) -m issuer keys rotate $(if $(FORCE),--force,)

keys-prune: $(STAMP)
	$(PY) -m issuer keys prune

keys-revoke: $(STAMP)
	@test -n "$(KID)" || { echo "usage: make keys-revoke KID=<kid> [YES=1]" >&2; exit 2; }
	$(PY) -m issuer keys revoke $(if $(YES),--yes,) -- '$(KID)'

# The issuer alone, as in production (`python -m issuer serve`, settings in issuer/server.py).
issuer: $(STAMP)
	$(PY) -m issuer serve

# The todo app alone (`python -m app serve`, app/server.py); it needs APP_CLIENT_ID and
# APP_CLIENT_SECRET (`make run` keeps the ones it registered in .data/app-client.json).
app: $(STAMP)
	$(PY) -m app serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
