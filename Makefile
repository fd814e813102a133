# The README's two commands (`make demo`, `make test`) do all the set-up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo needs only the `demo` extra (faker, aiosmtpd); the tests and linters need `dev`,
# which includes it.
VENV_STAMP := $(VENV)/.created-stamp
DEMO_STAMP := $(VENV)/.installed-demo-stamp
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench install clean browser wrk

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $(VENV_STAMP)

$(DEMO_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m tidings.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The browser tests drive Debian's chromium through Playwright; no browser is ever downloaded.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# Two workers: the machines have two cores, and the slow tests (real servers, fuzzing,
# SIGKILL loops) are independent of each other. (Three workers were no faster here, and the
# SIGKILL tests, which time their kills from a reference run, missed their moment.) The slow
# tests are collected first (tests/conftest.py) and handed out one at a time, so the two
# workers share them instead of one worker receiving them all in its first batch.
test: lint browser
	$(BIN)/python -m pytest -n 2 --maxschedchunk 1

# wrk (from Debian) loads the inbox API without measuring a Python client instead.
wrk:
	@command -v wrk >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)

bench: $(STAMP) wrk
	$(BIN)/python bench/ingest_close.py
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/remind_report.py
	$(BIN)/python bench/serve_http.py
	$(BIN)/python bench/kafka_consume.py
	$(BIN)/python bench/pg_capture.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis demo-out bench-out
