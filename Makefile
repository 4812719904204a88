# visxai: two commands do everything on a fresh machine.
#   make reproduce   set up (venv, pinned deps, offline data), execute every notebook, write figures/
#   make test        set up, then unit tests and nbval over notebooks/
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.visxai-installed
PROFILE ?= offline
DEVICE ?= auto
JOBS ?= 2
# one torch thread per process: on a small shared CPU, spin-waiting OpenMP threads are far slower
export VISXAI_THREADS ?= 1
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg -p no:randomly

.PHONY: setup install fetch reproduce test unit nbval notebooks lab bench clean

setup: install fetch

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

fetch: install
	$(PY) -m visxai fetch --offline-set

reproduce: setup
	$(PY) -m visxai reproduce --profile $(PROFILE) --device $(DEVICE)

test: setup
	$(MAKE) unit nbval

unit:
	$(PY) -m pytest -q -n $(JOBS) tests

nbval:
	$(PY) -m pytest -q $(NBVAL) -n $(JOBS) --dist loadfile notebooks/

# execute the notebooks in place (offline profile) so that their outputs can be committed for nbval
notebooks: setup
	$(PY) -m visxai reproduce --profile offline --inplace $(if $(ONLY),--only $(ONLY),)

lab: setup
	$(PY) -m pip install -q --disable-pip-version-check jupyterlab
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
