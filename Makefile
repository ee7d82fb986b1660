# The few commands a contributor needs. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JS := tests/e2e/js

.PHONY: run test lint typecheck unit fuzz e2e-deps deploy-deps docs package clean lock upgrade \
	lock-check test-lowest

# Installs take the versions in requirements.lock, as pip constraints (docs/howto/install.md
# says why): `make lock` refreshes it, `make upgrade` moves it to the newest releases.
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

## lock: refresh requirements.lock after a change to pyproject.toml (keeps the pins it still
## accepts); upgrade: the newest releases the ranges admit (PACKAGES="a b" for only those).
## Both install into a scratch venv and freeze it; then run `make test` and commit the lock.
lock:
	PYTHON=$(PYTHON) scripts/lock.sh
upgrade:
	PYTHON=$(PYTHON) scripts/lock.sh --upgrade $(PACKAGES)

## lock-check: requirements.lock pins every dependency pyproject.toml asks for (and theirs), at
## versions its ranges accept, and .venv holds those versions (no network; part of `make test`)
lock-check: $(TEST_STAMP)
	$(BIN)/python scripts/lockfile.py check

## test-lowest: the unit layers on the lowest versions pyproject.toml admits for each direct
## dependency (its lower bounds), in .venv-lowest; shows the lower bounds are honest
LOWEST := .venv-lowest
test-lowest:
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet packaging
	$(LOWEST)/bin/python scripts/lockfile.py lowest > $(LOWEST)/lowest.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/lowest.txt -e '.[redis,nats,sqlite,postgres,test]'
	@echo "test-lowest: these lower bounds, the newest releases of everything else:"; cat $(LOWEST)/lowest.txt
	$(LOWEST)/bin/pytest -q -p no:cacheprovider tests/protocol tests/server tests/contracts tests/cli \
		tests/apps tests/backbone tests/test_config.py tests/scripts tests/deploy/test_compose.py
	NO_MKDOCS_2_WARNING=1 $(LOWEST)/bin/mkdocs build --strict --quiet --site-dir $(LOWEST)/site

## deploy-deps: helm, for the chart tests (tests/deploy): scripts/install-helm.sh puts it in .tools/
deploy-deps:
	@scripts/install-helm.sh >/dev/null

## docs: the documentation site from docs/ into site/ (MkDocs); --strict: a broken link or a
## missing heading anchor fails
docs: $(TEST_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## package: the wheel and the sdist in dist/, checked by twine (tests/e2e/test_package.py also
## installs the wheel into a fresh venv and serves pusher-js with it)
package: $(TEST_STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/twine check --strict dist/*

## lint: formatting, lint rules, types and import layering
lint: $(TEST_STAMP)
	$(BIN)/ruff format --check src tests fuzz
	$(BIN)/ruff check src tests fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: install everything, lint, run the whole suite with coverage, then fuzz for a minute
test: $(TEST_STAMP) e2e-deps deploy-deps lock-check lint docs
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
	rm -rf $(VENV) $(LOWEST) $(JS)/node_modules clients/js/node_modules clients/js/dist .tools site dist .pytest_cache .mypy_cache .ruff_cache .coverage .fuzz

## bench: Ressonance next to Soketi 1.6.1 on loopback, every scenario (~15 min; never part of `make test`).
## `make bench BENCH_ARGS=--quick` runs the small sizes (~2 minutes).
.PHONY: bench
bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py --target both --scenarios a,b,c,d,e,f $(BENCH_ARGS)
