# orderflowd — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC := daemon ibsim chaos
CHECKED := daemon ibsim chaos tests scripts bench
CONFIG ?= config/orderflowd.toml
# The conformance suite's other clients (tests/conformance): ib_insync in a venv of its own
# (never beside ib_async: both ship a top-level `eventkit`) and @stoqey/ib under node.
INSYNC := .venv-insync
INSYNC_STAMP := $(INSYNC)/.installed
NODE_DIR := tests/conformance/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: install conformance-clients lint test demo chaos bench soak docs run-paper debug run-live systemd-check clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Each re-installs only when its pins change. Without npm the @stoqey/ib runs are skipped.
conformance-clients: $(INSYNC_STAMP) $(NODE_STAMP)

$(INSYNC_STAMP): tests/conformance/requirements-insync.txt
	@test -x $(INSYNC)/bin/python || $(PYTHON) -m venv $(INSYNC)
	$(INSYNC)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	@touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
		echo "npm ci in $(NODE_DIR)"; \
		cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "node/npm not found: the @stoqey/ib conformance runs will be skipped"; \
	fi

lint: install
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/mypy $(SRC)

test: lint conformance-clients
	$(BIN)/pytest

# ibsim replaying real ES trades + the daemon in debug mode; ends by itself after about a minute.
demo: install
	$(BIN)/python scripts/demo.py

# Seeded faults against the whole daemon trading replayed real data (about 25 minutes); prints
# per-fault recovery times and the invariants, exits non-zero if one fails. `make test` runs a
# one-round subset of the same code. Override: make chaos CHAOS_ARGS="--seed 3 --minutes 5".
CHAOS_ARGS ?= --seed 1 --minutes 25
chaos: install
	$(BIN)/python -m chaos $(CHAOS_ARGS)

# Figures, never assertions (about 10 minutes): every benchmark in bench/ one after the other,
# then one table (figure | value | baseline / ratio | command) and the machine, also written to
# bench/results/latest.md. A smoke run: make bench BENCH_ARGS=--quick (about 5 minutes).
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# The daemon trading five replayed sessions at 600x with a gateway restart a minute (about
# 13 minutes): RSS, descriptors, tasks and loop lag against the soak bounds; non-zero if one fails.
soak: install
	$(BIN)/python -m bench.soak

# The configuration reference and the TWS code catalogue in docs/, generated from the code
# (make test fails while they are out of date).
docs: install
	$(BIN)/python -m daemon.reference

# Against a local TWS / IB Gateway paper login (ports 7497, then 4002).
run-paper: install
	$(BIN)/orderflowd run --config $(CONFIG)

debug: install
	$(BIN)/orderflowd debug --config $(CONFIG)

# Refused unless the config says trading.mode = "live"; --live is the second key.
run-live: install
	$(BIN)/orderflowd run --config $(or $(LIVE_CONFIG),config/live.toml) --live

systemd-check:
	bash scripts/systemd-check.sh

clean:
	rm -rf $(VENV) $(INSYNC) $(NODE_DIR)/node_modules .mypy_cache .pytest_cache .ruff_cache state
