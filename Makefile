# Embodied AI Deployment Workbook
#   make run    set up everything and execute every notebook headlessly (PROFILE=quick|full)
#   make test   set up everything and run the test suite
#   make clean-outputs  remove generated runs/, exports and data
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
KERNEL := embodied-workbook
STAMP := $(VENV)/.installed

.PHONY: setup system-deps run test clean-outputs help
help:
	@sed -n '2,4p' Makefile

setup: system-deps $(STAMP)

# System packages the Python stack needs at run time: g++ (AOTInductor compiles C++).
system-deps:
	@command -v g++ >/dev/null && command -v $(PYTHON) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq g++ python3 python3-venv; \
	  else echo "error: need g++ and $(PYTHON); install them (Debian: sudo apt-get install g++ python3-venv)" >&2; exit 1; fi; }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Embodied workbook (.venv)" >/dev/null
	touch $@

run: setup
	$(PY) -m embodied_lib.workbook --profile $(PROFILE) --kernel $(KERNEL)

test: setup
	$(PY) -m pytest

clean-outputs:
	rm -rf runs exports/*/ data/*/
