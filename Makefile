# Entry points: install, run, test, lint, typecheck. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The official ACS JavaScript SDKs that tests/e2e/test_js_sdks.py drives (Node 20 and npm).
JS_STAMP := tests/js/node_modules/.installed
# azure-communication-callautomation 1.5 beside the 1.6 of requirements-dev.txt (same import
# name): tests/e2e/test_call_automation_sdk15.py puts this folder first on PYTHONPATH.
SDK15_VERSION := 1.5.0
SDK15 := $(VENV)/sdk15
SDK15_STAMP := $(SDK15)/.installed-$(SDK15_VERSION)

.PHONY: install run serve migrate test test-embedded test-services lint typecheck bench clean

install: $(STAMP) $(JS_STAMP) $(SDK15_STAMP)

# Reinstalls when a requirements file changes; safe to rerun after a failure.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Its dependencies are 1.6's, already in the venv. Starts from an empty folder each time, so a
# half-finished install or another version never lingers.
$(SDK15_STAMP): | $(STAMP)
	rm -rf $(SDK15)
	$(PY) -m pip install --quiet --no-deps --target $(SDK15) \
		azure-communication-callautomation==$(SDK15_VERSION)
	touch $(SDK15_STAMP)

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/js && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the JavaScript SDK tests will not run (install Node.js 20)."; fi

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py serve --demo

serve: run

# The whole suite on the embedded defaults, then again on PostgreSQL + Redis when
# DATABASE_URL / REDIS_URL are set (CI sets them).
test: install
	$(MAKE) --no-print-directory test-embedded
	@if [ -n "$$DATABASE_URL$$REDIS_URL" ]; then $(MAKE) --no-print-directory test-services; \
	else echo "DATABASE_URL/REDIS_URL not set: skipped the run on real services."; fi

test-embedded: install
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest $(PYTEST_ARGS)

test-services: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check apps spool tests bench
	$(PY) -m ruff format --check apps spool tests bench
	$(PY) manage.py makemigrations --check --dry-run

typecheck: install
	$(PY) -m mypy apps spool

# Every bench script, one after the other (a failed one does not stop the others), then one
# table of their headline figures beside the ceilings measured in the same run; the same goes to
# $SPOOL_BENCH_JSON (default bench/results/<UTC time>.json). Compare two runs with
# `.venv/bin/python bench/compare.py OLD.json NEW.json`. SPOOL_BENCH_SCRIPTS="tokens sms": only
# those; SPOOL_BENCH_SMOKE=1: each script's quick smoke run (no figure worth reading).
bench: install
	@export SPOOL_BENCH_JSON="$${SPOOL_BENCH_JSON:-bench/results/$$(date -u +%Y%m%dT%H%M%SZ).json}"; \
	failed=""; \
	for name in $${SPOOL_BENCH_SCRIPTS:-tokens sms chat calls automation pstn console scale phone_numbers}; do \
		if [ "$$name" = phone_numbers ] && [ -z "$$DATABASE_URL" ]; then \
			echo "bench/phone_numbers.py needs DATABASE_URL (PostgreSQL): skipped."; continue; fi; \
		echo "=== bench/$$name.py"; \
		$(PY) bench/$$name.py || failed="$$failed $$name"; \
	done; \
	echo; $(PY) bench/summary.py "$$SPOOL_BENCH_JSON" --failed "$$failed"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
