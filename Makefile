# visxai: two commands do everything on a fresh machine.
#   make reproduce   set up (venv, pinned deps, offline data), execute every notebook, write figures/
#   make test        set up, then unit tests, nbval over notebooks/ under this CPU's numerics and
#                    under emulated AVX2 numerics (test-portable); leaves the working tree clean
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
# another CPU's float rounding: AVX2 oneDNN convolutions, MKL's compatible matrix kernels, torch's AVX2 kernels
EMULATED := ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2
# notebooks to check (all by default); e.g. make nbval NB=notebooks/03_transformation_invariant_optimization.ipynb
# Two workers, two chains of two notebooks of about the same length (`make reproduce` on a 2-core
# Xeon, one process each: 02 about 510 s, 01 500, 03 340, 04 355): 02 and 01 start side by side,
# the first to finish takes 03, the other 04. --no-loadscope-reorder keeps this order (xdist
# would otherwise sort notebooks by their number of cells and put 02 and 01 on one worker)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
NB ?= $(foreach n,02 01 03 04,$(filter notebooks/$(n)_%,$(NOTEBOOKS))) \
      $(filter-out $(foreach n,01 02 03 04,notebooks/$(n)_%),$(NOTEBOOKS))

.PHONY: setup install fetch reproduce test lint unit nbval test-portable check-clean check-lock check-lab notebooks lab bench clean

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
	$(PY) -m visxai reproduce --profile $(PROFILE) --device $(DEVICE) $(if $(filter offline,$(PROFILE)),--canonical,)

test: setup
	$(MAKE) lint unit nbval test-portable check-lock check-lab check-clean

# pycodestyle, pyflakes and import order at the 100-character line of pyproject.toml
lint: install
	$(PY) -m ruff check lib tests benchmarks notebooks

# tests write figures to a temporary VISXAI_FIGURES: figures/ is written only by `make reproduce`
unit:
	@tmp=$$(mktemp -d); VISXAI_FIGURES=$$tmp $(PY) -m pytest -q -n $(JOBS) tests; rc=$$?; rm -rf $$tmp; exit $$rc

# nbval checks the printed verdicts; `scorecard --compare` then checks the run's scorecard rows
# against the committed ones (same verdicts, values within the committed CIs). Its two workers run
# two notebooks side by side, so each notebook keeps to one process (VISXAI_WORKERS=1)
nbval:
	@tmp=$$(mktemp -d); VISXAI_FIGURES=$$tmp VISXAI_WORKERS=1 $(PY) -m pytest -q $(NBVAL) -n $(JOBS) --dist loadfile --no-loadscope-reorder $(NB) \
	&& $(PY) -m visxai scorecard --compare $$tmp; rc=$$?; rm -rf $$tmp; exit $$rc

# the same committed notebooks checked under another CPU's numerics. On a CPU without AVX-512 the
# emulated AVX2 kernels are the native ones that nbval has just checked (only MKL's compatible mode
# would differ), so the pass is skipped there with a note, unless PORTABLE=force: a second full
# pass would double the CI time on such a machine for no new ISA
PORTABLE ?= auto
test-portable:
	@if [ "$(PORTABLE)" != force ] && [ -r /proc/cpuinfo ] && ! grep -qw avx512f /proc/cpuinfo; then \
	  echo "test-portable: skipped, this CPU has no AVX-512, so nbval already ran the AVX2 kernels;"; \
	  echo "  run it on an AVX-512 CPU, or here with: make test-portable PORTABLE=force"; exit 0; fi; \
	tmp=$$(mktemp -d); $(EMULATED) VISXAI_FIGURES=$$tmp VISXAI_WORKERS=1 $(PY) -m pytest -q $(NBVAL) -n $(JOBS) --dist loadfile --no-loadscope-reorder $(NB) \
	&& $(EMULATED) $(PY) -m visxai scorecard --compare $$tmp; rc=$$?; rm -rf $$tmp; exit $$rc

# the lock resolves for Linux x86-64, macOS arm64 and Windows x86-64 (asks the package registry)
check-lock:
	$(PY) tests/check_lock_platforms.py

# running the tests must not change the checkout
check-clean:
	@if [ -d .git ] && [ -n "$$(git status --porcelain)" ]; then \
	  echo "make test left the working tree dirty:"; git status --porcelain; exit 1; fi

# execute the notebooks in place (offline profile) so that their outputs can be committed for nbval
notebooks: setup
	$(PY) -m visxai reproduce --profile offline --inplace $(if $(ONLY),--only $(ONLY),)

# JupyterLab is pinned in requirements.lock: after set-up it starts without the network.
# The committed notebooks are this project's own executed outputs: trusting them (in your local
# Jupyter trust database, the files are not changed) lets JupyterLab draw the saved slider panels
# before the kernel runs. LAB_ARGS passes options to jupyter lab.
LAB_ARGS ?=
lab: setup
	$(VENV)/bin/jupyter trust -y notebooks/[0-9][0-9]_*.ipynb > /dev/null
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS) notebooks/

# headless Chromium opens `make lab`, checks the saved slider panels before any cell runs, then runs
# the cells each panel needs on its kernel and moves every slider (busy state, redraw; about 5 min);
# skipped without Chromium. `python tests/check_lab.py --saved-only` checks the saved panels only.
check-lab: setup
	$(PY) tests/check_lab.py

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache
