# curtaild: every target bootstraps .venv from the pinned lock file first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_PRICES ?= ../shared/data/ercot/np6-905-cd_rt_spp_hubs_jan2022-2025.csv

.PHONY: all venv test lint typecheck unit fuzz demo bench bench-decide bench-faults backtest broker tools clean

all: test

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The integration tests need Debian's mosquitto and prometheus (the server and promtool);
# install what is missing when we may. `broker` stays as an alias of `tools`.
tools:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (Debian packages) for the integration tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null; \
	  else \
	    echo "missing:$$missing; run 'sudo apt-get install$$missing' (the integration tests need them)"; exit 1; \
	  fi; \
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

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
