# Map Refiner: set-up, tests and the demo. See README.md.
# Everything a fresh Debian 12 machine needs is installed by these targets;
# each step leaves a stamp file so a second run is quick.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data
OUTDIR ?= out
APT_PACKAGES := python3-qgis qgis-providers python3-gdal gdal-bin python3-venv qgis xvfb imagemagick
export QT_QPA_PLATFORM ?= offscreen

.PHONY: all setup system venv lint pytest test demo bench bench-cluster experiment zip clean

all: test

system: $(VENV)/.system-stamp
$(VENV)/.system-stamp: Makefile  # the package list lives here
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "Installing Debian packages: $(APT_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi
	@mkdir -p $(VENV) && touch $@

venv: $(VENV)/.venv-stamp
$(VENV)/.venv-stamp: $(VENV)/.system-stamp requirements.txt requirements-dev.txt requirements-cluster.txt pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -r requirements-cluster.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

setup: venv

# Lint, format and the engine's types (configured in pyproject.toml); `make
# test` runs them first, so CI fails on any finding before the long tests.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy engine

# Engine, training and CLI tests run with QGIS absent (pytest-qgis disabled),
# which proves the engine needs no QGIS; then the plugin tests with pytest-qgis.
pytest: venv
	$(PY) -m pytest -q -p no:pytest_qgis --ignore=tests/qgis tests
	$(PY) -m pytest -q tests/qgis

test: lint pytest

demo: venv
	$(PY) -m map_refiner demo --data $(DATA) --out-dir $(OUTDIR)

# Speed: writes docs/benchmarks.md (and out/bench.json), which says how long the
# run took. Run it on a quiet machine: other torch processes on the same cores
# make every figure several times worse. pydensecrf2 is the peer.
bench: venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-experiment.txt
	$(PY) -m map_refiner.dev.benchmarks.bench --data $(DATA)

# A refine on a local Dask cluster against the single process: writes
# docs/benchmarks_cluster.md (~15 min: a 275 Mpx mosaic; alone on the machine, like bench).
bench-cluster: venv
	$(PY) -m map_refiner.dev.benchmarks.cluster --data $(DATA)

# The paper's experiment: writes docs/results.md (which says how long the run
# took) and docs/figures/. pydensecrf2 builds from source.
experiment: venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-experiment.txt
	$(PY) -m map_refiner.dev.experiment.run --data $(DATA)

zip: venv
	$(PY) -m map_refiner.dev.package_zip --out dist/map_refiner.zip

clean:
	rm -rf $(OUTDIR) dist .pytest_cache
