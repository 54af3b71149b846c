# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: run test bench bench-quick bench-smoke lint protocol clean

# The widget's browser tests drive Debian's own chromium (never a downloaded browser build):
# installed here when it is missing, so a fresh machine runs them with `make test`.
CHROMIUM ?= /usr/bin/chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	test -x $(CHROMIUM) || (apt-get update && apt-get install -y chromium)
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/openlines run --config config/example.yaml

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m bench

bench-quick: $(VENV)/.installed
	$(PY) -m bench --quick

bench-smoke: $(VENV)/.installed
	$(PY) -m bench.smoke --messages 20000

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check engine actors channels tests bench
	$(VENV)/bin/mypy

# The schema and test vectors portals are given, generated from the code (docs/protocol.md).
protocol: $(VENV)/.installed
	$(VENV)/bin/openlines protocol schema --write
	$(VENV)/bin/openlines protocol vectors --write

clean:
	rm -rf $(VENV) data
