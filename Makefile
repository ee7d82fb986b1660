# The few commands a contributor needs. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JS := tests/e2e/js

.PHONY: run test lint typecheck unit fuzz e2e-deps clean

# Installs take the versions in requirements.lock (scripts/lock.sh refreshes it).
# Two install stamps: `make run` installs the server with its Redis and NATS clients only;
# everything else installs the test tools too.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

$(RUN_STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[redis,nats,sqlite,postgres]'
	touch $@

$(TEST_STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[redis,nats,sqlite,postgres,test]'
	touch $@ $(RUN_STAMP)

## run: install (first time) and start one node with a development app
run: $(RUN_STAMP)
	$(BIN)/ressonance serve $(ARGS)

## e2e-deps: the real clients the end-to-end tests drive (npm packages, Debian chromium), and
## the ressonance-js add-on built from clients/js (the tests rebuild it too)
e2e-deps:
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent
	@command -v chromium >/dev/null || scripts/install-chromium.sh

## lint: formatting, lint rules, types and import layering
lint: $(TEST_STAMP)
	$(BIN)/ruff format --check src tests fuzz
	$(BIN)/ruff check src tests fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: install everything, lint, run the whole suite with coverage, then fuzz for a minute
test: $(TEST_STAMP) e2e-deps lint
	$(BIN)/pytest --cov --cov-report=term -q
	$(BIN)/coverage report --include='*/ressonance/protocol/*' --fail-under=100 --skip-covered
	$(MAKE) fuzz

## fuzz: atheris on the protocol parsers for FUZZ_SECONDS (default 60); fails on a crash, whose
## input is written to .fuzz/crash-*. New inputs collect in .fuzz/corpus; fuzz/seeds is read only.
FUZZ_SECONDS ?= 60
fuzz: $(TEST_STAMP)
	@mkdir -p .fuzz/corpus
	@echo "fuzz: atheris on the protocol parser for $(FUZZ_SECONDS) s (log: .fuzz/last-run.log)"
	@$(BIN)/python fuzz/protocol_parser.py .fuzz/corpus fuzz/seeds -dict=fuzz/protocol.dict \
		-max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=.fuzz/ -print_final_stats=1 \
		> .fuzz/last-run.log 2>&1 || { tail -n 60 .fuzz/last-run.log; exit 1; }
	@grep -E "^Done|skipped|number_of_executed_units|new_units_added" .fuzz/last-run.log || true

## unit: the fast layers only (no Node, no browser)
unit: $(TEST_STAMP)
	$(BIN)/pytest tests/protocol tests/server tests/contracts -q

clean:
	rm -rf $(VENV) $(JS)/node_modules clients/js/node_modules clients/js/dist .pytest_cache .mypy_cache .ruff_cache .coverage .fuzz

## bench: Ressonance next to Soketi 1.6.1 on loopback, every scenario (~15 min; never part of `make test`).
## `make bench BENCH_ARGS=--quick` runs the small sizes (~2 minutes).
.PHONY: bench
bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py --target both --scenarios a,b,c,d,e,f $(BENCH_ARGS)
