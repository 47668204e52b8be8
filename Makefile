# The two commands of the README: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN      = $(VENV)/bin
FLASK    = $(BIN)/flask --app wsgi
HOST    ?= 127.0.0.1
PORT    ?= 5000
WORKERS ?= $(shell $(PYTHON) -c 'import os; print(len(os.sched_getaffinity(0)) + 1)')

.PHONY: run test test-clock lint bench clean translations

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## run: set up, migrate the SQLite database, seed the demo campaign and serve it,
## with the scheduler beside the server (stopped with it, Ctrl-C stops both).
run: $(VENV)/.installed
	$(FLASK) tracker init-db
	$(FLASK) tracker demo --url http://$(HOST):$(PORT)
	$(FLASK) tracker set-campaign demo --notify-email owner@example.org --summary daily
	@# Without TRACKER_SMTP_URL the summary is written to the log instead of mailed.
	$(FLASK) tracker send-summary demo
	@echo ""
	@echo "  tracker is running:"
	@echo "    start page     http://$(HOST):$(PORT)/"
	@echo "    demo article   http://$(HOST):$(PORT)/demo/article"
	@echo "    embed builder  http://$(HOST):$(PORT)/campaigns/demo/embed"
	@echo "    donate page    http://$(HOST):$(PORT)/donate/demo"
	@echo "    progress API   http://$(HOST):$(PORT)/api/v1/campaigns/demo"
	@echo "    health         http://$(HOST):$(PORT)/healthz"
	@echo "    scheduler      running beside the server: flask --app wsgi tracker jobs"
	@echo "    admin          http://$(HOST):$(PORT)/admin/ (sign-in printed above)"
	@echo ""
	@$(FLASK) tracker scheduler & scheduler=$$!; \
	trap 'kill -TERM $$scheduler 2>/dev/null; wait $$scheduler' EXIT INT TERM; \
	$(FLASK) run --host $(HOST) --port $(PORT)

## lint: ruff and mypy.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole pytest suite (SQLite and PostgreSQL), each in-process
## test also at four awkward instants (tests/conftest.py, CLOCK_INSTANTS), spread
## over one pytest-xdist worker per core plus one: the tests that start servers or
## a browser share one worker and mostly wait on them.
test: lint
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup --moved-clocks=also

## test-clock: only the moved-clock runs.
test-clock: $(VENV)/.installed
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup --moved-clocks=only

## translations: extract the public texts, merge them into every catalog, compile the .mo files.
## Commit the .po and .mo files together (a test checks that they agree; docs/i18n.md).
translations: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k N_ --no-location --sort-output \
		--project tracker --version 0.1.0 --copyright-holder "tracker contributors" --width 100 \
		-o tracker/translations/messages.pot .
	$(BIN)/pybabel update -i tracker/translations/messages.pot -d tracker/translations \
		--no-fuzzy-matching --width 100 --ignore-pot-creation-date
	$(BIN)/pybabel compile -d tracker/translations --statistics

## bench: every benchmark in bench/, one table (see bench/README.md); needs wrk, nginx,
## PostgreSQL. `make bench BENCH=--quick` for the short version, BENCH=--json for JSON.
BENCH ?=
bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
