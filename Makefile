# The two commands of the README: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN      = $(VENV)/bin
FLASK    = $(BIN)/flask --app wsgi
HOST    ?= 127.0.0.1
PORT    ?= 5000

.PHONY: run test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## run: set up, migrate the SQLite database, seed the demo campaign and serve it.
run: $(VENV)/.installed
	$(FLASK) tracker init-db
	$(FLASK) tracker demo --url http://$(HOST):$(PORT)
	@echo ""
	@echo "  tracker is running:"
	@echo "    demo article   http://$(HOST):$(PORT)/demo/article"
	@echo "    embed builder  http://$(HOST):$(PORT)/campaigns/demo/embed"
	@echo "    donate page    http://$(HOST):$(PORT)/donate/demo"
	@echo "    progress API   http://$(HOST):$(PORT)/api/v1/campaigns/demo"
	@echo "    health         http://$(HOST):$(PORT)/healthz"
	@echo "    admin          http://$(HOST):$(PORT)/admin/ (sign-in printed above)"
	@echo ""
	$(FLASK) run --host $(HOST) --port $(PORT)

## lint: ruff and mypy.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole pytest suite (SQLite and PostgreSQL).
test: lint
	$(BIN)/pytest

## bench: the benchmarks in bench/ (see bench/README.md); needs wrk, nginx, PostgreSQL.
bench: $(VENV)/.installed
	$(BIN)/python bench/progress_api.py
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/webhook_floor.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
