# Set-up and checks; `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore

.PHONY: install demo test lint format

# torch first, pinned: 2.13.0 is the local CPU build here, so nothing downloads CUDA packages.
install:
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'

# The main job on the embedded default: train resnet20 on scikit-learn's 8x8 digits (no
# download), then predict held-out digits written as PNG files, with the checkpoint alone.
demo: install
	rm -rf runs/demo
	cnnzoo train --model resnet20 --data digits --out runs/demo --no-progress
	cnnzoo data digits --export runs/demo/samples --per-class 2
	cnnzoo predict --checkpoint runs/demo runs/demo/samples --topk 3

test: install
	$(PYTHON) -m pytest -n 2

lint: install
	ruff check src tests bench
	ruff format --check src tests bench
	lint-imports

format:
	ruff check --fix src tests bench
	ruff format src tests bench
