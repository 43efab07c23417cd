# Set-up and checks; `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore

.PHONY: install demo test lint format

# torch first, pinned: 2.13.0 is the local CPU build here, so nothing downloads CUDA packages.
install:
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'

demo: install
	cnnzoo summary resnext50_32x4d

test: install
	$(PYTHON) -m pytest

lint: install
	ruff check src tests bench
	ruff format --check src tests bench

format:
	ruff check --fix src tests bench
	ruff format src tests bench
