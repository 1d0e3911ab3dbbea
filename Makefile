# Every target creates .venv on a fresh machine and installs into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install npm clean-venv pg

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Appium 3 with the uiautomator2 driver, and the fake driver the tests use: the repo is APPIUM_HOME.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json tests/appium_driver/package.json
	npm ci --ignore-scripts --no-audit --no-fund
	npm run --silent check-drivers
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/postdeck --campaign demo

test: pg $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

# The tests start their own PostgreSQL server (tests/pg_server.py) from Debian's postgresql
# package. Installed here when missing (as root, or with sudo); when that is impossible, a loud
# warning, and the database tests skip loudly. The package's postinst may create and start a
# system cluster on port 5432: harmless, the tests use their own cluster on a free port.
pg:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else sudo=none; fi; \
	if [ "$$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then \
	  echo 'Installing PostgreSQL (Debian package postgresql) for the tests...'; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends postgresql || true; \
	fi; \
	if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then exit 0; fi; \
	echo '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2; \
	echo 'WARNING: could not install PostgreSQL (needs root or sudo, and apt-get):' >&2; \
	echo '         the database tests will be SKIPPED. Run: apt-get install postgresql' >&2; \
	echo '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2

# procrastinate (the reference bench/store.py measures the PostgreSQL store against) is a bench
# extra: the tests do not need it.
bench: pg $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/report.py
