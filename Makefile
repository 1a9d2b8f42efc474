# curtaild: every target bootstraps .venv from the pinned lock file first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCHEMA_CHECK := deploy/grafana/schema-check
SHARED_PRICES ?= ../shared/data/ercot/np6-905-cd_rt_spp_hubs_jan2022-2025.csv
VALUE_STACK ?= ../shared/data/ercot/value-stack

.PHONY: all venv test lint typecheck unit fuzz demo bench bench-decide bench-faults bench-agent backtest value broker tools clean deploy-check

all: test

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The integration tests need Debian's mosquitto, etcd-server (leader election, docs/ha.md) and
# prometheus (the server and promtool), the Grafana schema check node and
# deploy/grafana/schema-check's npm packages; install what is missing when we may. `broker` stays as an alias of `tools`.
tools:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server"; \
	{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (Debian packages) for the integration tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null; \
	  else \
	    echo "missing:$$missing; run 'sudo apt-get install$$missing' (the integration tests need them)"; exit 1; \
	  fi; \
	fi
	@# Grafana's published dashboard types (npm, pinned by package-lock.json), for
	@# tests/unit/test_grafana_schema.py; npm ci again only when the lock file changed.
	@cd $(SCHEMA_CHECK) && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  if ! command -v npm >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "installing nodejs npm (Debian packages) for the Grafana schema check"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm) >/dev/null; \
	    else \
	      echo "missing: npm; run 'sudo apt-get install nodejs npm' (the Grafana schema check needs it)"; exit 1; \
	    fi; \
	  fi; \
	  echo "npm ci in $(SCHEMA_CHECK) (@grafana/schema, typescript)"; \
	  npm ci --no-audit --no-fund --loglevel=error; \
	fi

broker: tools

lint: $(STAMP)
	$(BIN)/ruff check controller tests bench
	$(BIN)/ruff format --check controller tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) tools lint typecheck
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Long property run: 20,000 examples per property.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q tests/unit -k property

demo: $(STAMP)
	@if [ -f "$(SHARED_PRICES)" ]; then \
	  $(BIN)/curtaild demo --prices "$(SHARED_PRICES)"; \
	else \
	  $(BIN)/curtaild demo; \
	fi

backtest: $(STAMP)
	$(BIN)/curtaild backtest --config config.example.toml --prices "$(SHARED_PRICES)" \
	  --from 2024-01-10 --to 2024-01-20 --plot backtest-jan2024.png

# The example site's value stack for 2024 and 2025 (README, "Value stack"): energy, reserves
# and 4CP from ERCOT's hourly hub prices, DAM clearing prices for capacity, the official 4CP
# intervals and ERCOT's load. The spring-forward weeks are missing from the price table.
value: $(STAMP)
	$(BIN)/curtaild backtest --config config.example.toml \
	  --prices "$(VALUE_STACK)/ercot_hourly_spp_HB_WEST_HB_NORTH_LZ_WEST_2024-01-01_2026-03-17_from_lanxindeng8.csv" \
	  --from 2024-01-01 --to 2025-12-31 --allow-gaps \
	  --reserve-prices "$(VALUE_STACK)/DAMASMCPC_2024.csv" \
	  --reserve-prices "$(VALUE_STACK)/DAMASMCPC_2025_jan01_apr12.csv" \
	  --reserve-prices "$(VALUE_STACK)/ercot_dam_as_mcpc_2025-04-13_2026-02-14_from_lanxindeng8.csv" \
	  --4cp "$(VALUE_STACK)/ercot_4cp_intervals_2021_2025.csv" \
	  --load "$(VALUE_STACK)/ercot_NP6-346-CD_actual_load_by_forecast_zone_hourly_2021_2025.csv" \
	  --plot value-2024-2025.png

# The site-scale benchmark (issue 9): the daemon, mosquitto and simulated PDUs/agents at 10/5,
# 100/50 and 1000/200 PDUs/pools (20 rounds of events each) and 3000/600 (5 rounds), against a
# bare protocol floor (about 20 minutes; not next to a test run). A quick run:
#   make bench BENCH_ARGS="--sizes 10/5 --events 3 --no-write"
BENCH_ARGS ?=
bench: $(STAMP) tools
	$(BIN)/python bench/bench_scale.py $(BENCH_ARGS)

bench-decide: $(STAMP)
	$(BIN)/python bench/bench_decide.py

# Every fault of docs/reliability.md against the real daemon and mosquitto (about 5 minutes;
# not next to a test run: both load the machine).
bench-faults: $(STAMP) tools
	$(BIN)/python bench/bench_faults.py

# docs/deploy.md run literally on a fresh Debian 12 VM with systemd as PID 1 (root; qemu, KVM
# when available; 10-30 minutes; needs Debian's mirror and PyPI). Not part of `test` or CI:
# deploy/hostcheck/README.md.
deploy-check: $(STAMP)
	deploy/hostcheck/run.sh

# The pool agent at 10, 100 and 1,000 simulated miners (binds port 80 on 127.x: run as root).
bench-agent: $(STAMP) tools
	$(BIN)/python bench/bench_agent.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
