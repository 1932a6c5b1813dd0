# dynocc developer tasks. `make test` builds .venv on first use (and again when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_OUT ?= demo_out

# Local Ray runs (tests, demo, bench) need no token.
RUN_ENV := RAY_AUTH_MODE=disabled

.DEFAULT_GOAL := test
.PHONY: venv .venv test test-fast demo bench clean distclean help

help:
	@echo "targets: .venv (or venv) test test-fast demo bench clean distclean"

# `.venv` and `venv` are aliases for the install stamp below.
.venv venv: $(STAMP)

# pyproject pins torch==2.13.*. Installed on its own, pip picks the local CPU wheel
# (2.13.0+cpu sorts above 2.13.0) where one is on disk; that exact build is then pinned,
# because resolving the whole project in one go can backtrack past it and fetch the
# CUDA build (GBs of nvidia-* wheels) instead.
$(STAMP): pyproject.toml
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --upgrade pip
	$(VENV_PY) -m pip install 'torch==2.13.*'
	$(VENV_PY) -m pip freeze | grep -i '^torch==' > $(VENV)/torch-pin.txt
	$(VENV_PY) -m pip install -c $(VENV)/torch-pin.txt -e '.[test]'
	touch $(STAMP)

# Everything: tests/unit and tests/integration (CI and the README run this).
test: $(STAMP)
	$(RUN_ENV) $(VENV_PY) -m pytest -q -ra $(PYTEST_ARGS)

# The unit tests only: pure and quick (under 2 minutes on 2 cores): no Ray, no servers, no CLI subprocesses.
test-fast: $(STAMP)
	$(RUN_ENV) $(VENV_PY) -m pytest -q -ra tests/unit $(PYTEST_ARGS)

demo: $(STAMP)
	$(RUN_ENV) $(VENV)/bin/dynocc demo --out $(DEMO_OUT)

bench: $(STAMP)
	$(RUN_ENV) $(VENV_PY) benchmarks/bench_miner.py

clean:
	rm -rf $(DEMO_OUT) bench_out out build dist .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# Also drops the venv and the editable install's metadata.
distclean: clean
	rm -rf $(VENV) *.egg-info
