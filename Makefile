# kubeagora — common tasks. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test unit lint bench speed controlplane clean

$(BIN)/kubeagora: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cluster,operator]' --group dev
	@touch $@

install: $(BIN)/kubeagora

demo: install
	$(BIN)/kubeagora bench --scenarios steady-drift --report out/demo --json out/demo/results.json

test: install
	$(BIN)/pytest -n 2 tests

unit: install
	$(BIN)/pytest -n 2 tests/unit

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench: install
	$(BIN)/kubeagora bench --seeds 5 --report out/bench --json out/bench/results.json

speed: install
	$(BIN)/python benchmarks/speed.py

# the Kubernetes control plane built from its Go modules (cached per version; the first build is slow)
controlplane:
	controlplane/build.sh

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
