# Every target creates .venv on a fresh machine and installs into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install npm clean-venv

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

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/report.py
