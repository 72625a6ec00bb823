# kubeagora — common tasks. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# `pip install --group` (PEP 735 dependency groups) exists from pip 25.1 on; an older pip (an offline
# mirror, a pinned one) would fail with "no such option: --group": say so instead.
define PIP_CHECK
import sys
from pip import __version__ as v
from pip._vendor.packaging.version import Version
if Version(v) < Version("25.1"):
    sys.exit(f"pip {v} is too old: 'pip install --group dev' needs pip >= 25.1 (run: $(BIN)/pip install --upgrade 'pip>=25.1')")
endef
export PIP_CHECK

.PHONY: install demo test unit lint bench evidence speed table2 controlplane helm chart prometheus clean

# the learn extra (torch, PettingZoo) and the fast one (numba: the engine compiled) too: the learning tests train a tiny run (the core never imports torch)
$(BIN)/kubeagora: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/python -c "$$PIP_CHECK"
	$(BIN)/pip install --quiet -e '.[cluster,operator,ray,learn,fast]' --group dev
	@touch $@

install: $(BIN)/kubeagora

# the simulator's bench on the default scenario, then the product on a real local control plane:
# operator + scheduler extender + an intent, one burst against the real HPA (builds the control plane once)
demo: install
	$(BIN)/kubeagora bench --scenarios steady-drift --report out/demo --json out/demo/results.json
	$(BIN)/kubeagora demo --out out/demo/cluster

# --dist loadfile: a module's tests share one worker (and its module-scoped stack)
test: install
	$(BIN)/pytest -n 2 --dist loadfile tests

unit: install
	$(BIN)/pytest -n 2 tests/unit

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# every baseline at its shipped default and over its knob's standard sweep, 5 seeds per scenario
bench: install
	$(BIN)/kubeagora bench --sweep standard --seeds 5 --report out/bench --json out/bench/results.json

# docs/benchmarks.md's "How we compare": tuned on the traces' train and validation segments, reported on
# their test segments, Table 1 with every baseline's sweep, and the same under model error (hours on 2 cores;
# resumes where it stopped). TRACES names the directory holding the public traces. SEEDS=5 JOBS=2 by default.
evidence: install
	@test -n "$(TRACES)" || { echo "usage: make evidence TRACES=DIR (the directory holding the public traces)" >&2; exit 2; }
	benchmarks/evidence.sh "$(TRACES)" out/evidence

speed: install
	$(BIN)/python benchmarks/speed.py

# the seed paper's Table 2 on the local control plane: real HPA vs the operator, one burst, 3 runs
table2: install
	$(BIN)/python benchmarks/burst_table2.py --runs 3

# the Kubernetes control plane built from its Go modules (cached per version; the first build is slow)
controlplane:
	controlplane/build.sh

# helm, built from its Go module (tools/helm/go.mod pins the version; cached like the control plane)
helm:
	tools/helm/build.sh

# the Helm chart: lint it with that helm (the chart's tests render and install it)
chart: helm
	"$$(tools/helm/build.sh --path)" lint --strict charts/kubeagora

# Debian's Prometheus, fetched without root and cached (the operator's tests scrape with it)
prometheus: install
	$(BIN)/python -c "from kubeagora.devcluster.prometheus import resolve_prometheus; print(resolve_prometheus())"

# the image's Python dependencies, pinned with their hashes (the Dockerfile installs from this file only)
lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra operator --extra cluster --generate-hashes \
	  --universal --python-version 3.11 --custom-compile-command "make lock" -o requirements/image.lock

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
