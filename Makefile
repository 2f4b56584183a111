# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FH := $(BIN)/funnelhouse
STATE := $(or $(FUNNELHOUSE_HOME),.funnelhouse)
DEMO_DIR ?= $(STATE)/demo-landing
DEMO_CUSTOMERS ?= 2000
UI_PORT ?= 3000
export PYTHONUNBUFFERED := 1
# dbt's own files stay under dbt_project/ (Dagster reads the manifest there).
export DBT_TARGET_PATH := $(CURDIR)/dbt_project/target
export DBT_LOG_PATH := $(CURDIR)/dbt_project/logs

.PHONY: venv manifest demo test lint format ui up down status clean system-packages \
	bench bench-ingest bench-clickhouse bench-warehouse bench-search bench-reports

# The virtualenv is rebuilt when the dependency pins change.
$(BIN)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

venv: $(BIN)/.installed

# The dbt manifest Dagster builds its dbt assets from; parsing needs no server. Parsed again only when
# the project changed: otherwise the parse the last build left stays for the next build to reuse.
# Into $(DBT_TARGET_PATH): `make manifest DBT_TARGET_PATH=...` parses into a target of its own.
DBT_PROJECT_FILES := dbt_project.yml $(shell find dbt_project -type f -not -path 'dbt_project/target/*' \
	-not -path 'dbt_project/logs/*' -not -path 'dbt_project/dbt_packages/*' -not -name .user.yml)
# A deleted file leaves nothing newer than the manifest behind: the list of the project's files is a
# prerequisite too, rewritten only when a file was added or removed.
DBT_FILE_LIST := $(DBT_TARGET_PATH)/.project-files
$(shell mkdir -p '$(DBT_TARGET_PATH)' && echo '$(DBT_PROJECT_FILES)' | cmp -s - '$(DBT_FILE_LIST)' \
	|| echo '$(DBT_PROJECT_FILES)' > '$(DBT_FILE_LIST)')
# `funnelhouse manifest` parses in the environment builds give dbt (dbt_environment.dbt_env): their
# target, so they reuse the parse, and with README's production variables the host and port the prod
# profile reads, derived from FUNNELHOUSE_CLICKHOUSE_URL (a bare `dbt parse` lacks them).
manifest: $(DBT_TARGET_PATH)/manifest.json
$(DBT_TARGET_PATH)/manifest.json: $(BIN)/.installed $(DBT_PROJECT_FILES) $(DBT_FILE_LIST)
	$(FH) manifest
	touch $@

demo: venv system-packages manifest
	$(FH) up
	$(FH) migrate
	$(FH) generate --out $(DEMO_DIR) --customers $(DEMO_CUSTOMERS) --seed 7 --overwrite
	$(FH) ingest --via-dagster $(DEMO_DIR)
	$(FH) build
	$(FH) marts
	$(FH) backfill --from $(shell date -u -d "$$(date -u +%Y-%m-01) -1 day" +%Y-%m) --to $(shell date -u +%Y-%m)
	$(FH) dbt build --select mart_funnel_cohorts
	$(FH) docs
	$(FH) reindex --full
	$(FH) search "美股"
	$(FH) search "withdraw" --since 2026-10-01
	$(FH) search-quarantine
	$(FH) report --send
	$(FH) report --weekly --send
	@echo
	$(FH) status
	@echo "Landing files: $(DEMO_DIR)"
	@echo "Reports:       $(STATE)/reports    Mails: $(STATE)/outbox"
	@echo "Dagster UI:    make ui, then http://127.0.0.1:$(UI_PORT)"
	@echo "dbt docs:      $(FH) docs --serve, then http://127.0.0.1:8080"
	@echo "BI, read-only: user bi_reader at the clickhouse address above, password in $(STATE)/secrets/clickhouse-bi-reader"
	@echo "Stop:          make down"

# Debian packages the reports need (Chromium for render tests, a CJK font, HarfBuzz for PDFs).
system-packages:
	bash devstack/system-packages.sh

# Test files are spread over TEST_WORKERS processes (pytest-xdist), each with its own embedded stack;
# a file stays on one worker, so its module fixtures are built once. TEST_WORKERS=0 runs them serially.
# On 2 cores, fresh clone, nothing else running: 2 workers 20-22 min of pytest in the last runs (18.5-19 min
# once, on a faster machine; 22 min before each worker kept its search engines for the session:
# tests/fixtures/search.py), serial 30 min (the tests wait on engines starting and on sensors much of the
# time; two workers overlap those waits). 3 workers: 22.9 min, no faster (the two cores are busy already).
# On a slower machine of the same kind (2026-12-02, fresh clone: user CPU 3,247 s against 1,775 s): 46.7 min;
# tests/warehouse (builds, dbt runs) took 44 of its 90 worker-minutes. With a warm dbt server per worker
# (tests/conftest.py, orchestration/warm_dbt.py), same machine, fresh clone: 25.8 min with nothing else
# running (50 worker-minutes, tests/warehouse 21.5), 28.8 min with other work beside it.
# With the server also parsing the project before it serves (orchestration/warm_dbt_parse.py), fresh clone,
# nothing else running: 27.1 min on a slower day (the same build benchmark 56 -> 68 s); against the run
# before, the dbt-heavy modules' sum went 925 -> 798 s and the sum of the largest other modules 741 -> 915 s.
TEST_WORKERS ?= 2
test: venv system-packages manifest lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# SQL: the dbt project's models and singular tests (.sqlfluff says which rules and why; .sqlfluffignore
# why not macros). Needs no server: the jinja templater renders them as a first build would.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# (the filter: sqlfluff's worker pool leaves a harmless "leaked semaphore" warning at exit)
	PYTHONWARNINGS="ignore:resource_tracker:UserWarning" $(BIN)/sqlfluff lint dbt_project/models dbt_project/tests --processes 2

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ui: venv manifest
	$(FH) up
	DAGSTER_HOME=$$(realpath '$(STATE)')/dagster; mkdir -p $$DAGSTER_HOME; \
	  cp -n devstack/dagster.yaml $$DAGSTER_HOME/dagster.yaml; \
	  DAGSTER_HOME=$$DAGSTER_HOME $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

up: venv
	$(FH) up
down: venv
	$(FH) down
status: venv
	$(FH) status

bench-ingest: venv
	$(BIN)/python bench/ingest.py
bench-clickhouse: venv
	$(BIN)/python bench/clickhouse_http.py
bench-warehouse: venv manifest
	$(BIN)/python bench/warehouse.py
bench-search: venv
	$(BIN)/python bench/search.py
bench-reports: venv system-packages
	$(BIN)/python bench/reports.py
bench: bench-clickhouse bench-ingest bench-warehouse bench-search bench-reports

# Stops and removes the same home: $(STATE), never empty ($(or) falls back to the default when
# FUNNELHOUSE_HOME is unset or empty, and `down` is told that home rather than reading the variable).
clean: venv
	FUNNELHOUSE_HOME='$(STATE)' $(FH) down
	rm -rf -- '$(STATE)'
