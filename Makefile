# Two commands matter: `make run` (the product on this machine) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

# The suite runs against the machine's PostgreSQL and Redis (README: Tests).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: run test bench install install-dev clean system-deps

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt client/pyproject.toml
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: $(VENV)/.runtime
	VENV=$(VENV) deploy/run-local.sh

# nginx, Debian's chromium and wrk for the end-to-end, browser and nginx bench runs; ffmpeg and
# lame, the decoders (and the reference encoder) the media tests and benches check against;
# installed once, only when missing (Playwright cannot download its own browsers here).
system-deps:
	@command -v nginx >/dev/null && command -v chromium >/dev/null && command -v wrk >/dev/null && \
	  command -v ffmpeg >/dev/null && command -v lame >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx chromium wrk ffmpeg lame >/dev/null; }

test: $(VENV)/.dev system-deps
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev system-deps
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m tests.perf

clean:
	rm -rf $(VENV) var
