"""The compiled engine step (`kubeagora.sim.kernels`, the `fast` extra) gives exactly the numpy path's floats.

CI installs the extra (Makefile `install`) and sets KUBEAGORA_REQUIRE_NUMBA=1, so there these tests run; in
a checkout without numba they skip, and `test_the_fast_extra_is_installed_where_required` fails CI if the
skip ever happens there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from kubeagora.controllers.registry import make_controller
from kubeagora.sim import kernels
from kubeagora.sim import latency as lat
from kubeagora.sim.engine import Engine
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import compile_scenario, load_scenario


def test_the_fast_extra_is_installed_where_required() -> None:
    if os.environ.get("KUBEAGORA_REQUIRE_NUMBA") != "1":
        pytest.skip("KUBEAGORA_REQUIRE_NUMBA is not set (CI sets it)")
    assert kernels.AVAILABLE
    assert kernels.ENABLED


needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (the fast extra)")


def run_json(scenario: str, controller: str, duration_s: float, compiled: bool,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(kernels, "ENABLED", compiled)
    model, source = load_scenario(scenario)
    sc = compile_scenario(model.model_copy(update={"duration_s": duration_s}), source)
    result = simulate(sc, make_controller(controller, sc)).as_json()
    # timings are not results: the controller's CPU time moves with the machine
    result.pop("wall_s")
    result["metrics"].pop("overhead_us_per_req")
    result["extras"].pop("controller_cores")
    return result


@needs_numba
@pytest.mark.parametrize(("scenario", "controller"), [
    ("node-zone-failure", "hpa"),  # dead nodes, evictions, requests buffered without endpoints
    ("region-partition", "static"),  # packet loss (point masses), an unreachable region
    ("burst-hotspot", "heuristic"),  # overload: full queues, far replicas
])
def test_a_run_is_the_same_compiled_and_in_numpy(scenario: str, controller: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = run_json(scenario, controller, 1200.0, True, monkeypatch)
    numpy_only = run_json(scenario, controller, 1200.0, False, monkeypatch)
    assert json.dumps(compiled, sort_keys=True) == json.dumps(numpy_only, sort_keys=True)
    assert compiled["extras"]["served"] > 0


@needs_numba
def test_the_engine_reads_the_switch_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    model, source = load_scenario("steady-drift")
    sc = compile_scenario(model, source)
    monkeypatch.setattr(kernels, "ENABLED", False)
    assert not Engine(sc).compiled
    monkeypatch.setattr(kernels, "ENABLED", True)
    engine = Engine(sc)
    assert engine.compiled
    assert isinstance(engine.recorder._entries, kernels.DensityAccumulator)


@needs_numba
def test_knot_densities_are_the_buffered_ones_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    rows, cols = 5, 40
    entries, accumulated = lat.DensityEntries(rows, 20_000), kernels.DensityAccumulator(rows)
    for _ in range(4):
        # knots that coincide, clip at the histogram's ends, or spread over decades; two columns per row
        knots = np.sort(rng.lognormal(3.0, 2.0, (lat.N_KNOTS, cols)), axis=0).astype(np.float32)
        knots[:, :3] = knots[0, :3]
        mass = rng.exponential(5.0, cols)
        offset = (np.arange(cols) % rows).astype(np.float64) * lat.BINS
        entries.add_knots(knots.copy(), mass, offset)
        accumulated.add_knots(knots.copy(), mass, offset)
        points = lat.point_bin(rng.lognormal(4.0, 1.0, 7)) + rng.integers(0, rows, 7) * float(lat.BINS)
        entries.add_points(points, mass[:7])
        accumulated.add_points(points, mass[:7])
    expected = entries.histograms()
    assert np.array_equal(accumulated.histograms(), expected)
    assert expected.sum() > 0
    assert not accumulated.density.any()  # the window's densities are consumed


@needs_numba
def test_far_groups_merge_as_numpy_merges_them() -> None:
    rng = np.random.default_rng(5)
    n_services, slots = 6, 30
    service = rng.integers(0, n_services, slots)
    terms = rng.exponential(1.0, (len(lat.GROUP_STATS) + 1, slots))
    sums = np.zeros((terms.shape[0], n_services))
    for k in range(slots):
        sums[:, service[k]] += terms[:, k]
    far = rng.random(slots) < 0.3
    ids, stats = kernels.merge_groups(service, terms, sums.copy(), far, n_services)
    expected = lat.groups_from_terms(service, terms, sums.copy(), far, n_services)
    assert np.array_equal(ids, expected.group)
    assert np.array_equal(stats, expected.stats)
    assert ids.shape[0] > n_services


@needs_numba
def test_the_kernels_run_where_numba_finds_nowhere_to_cache_them() -> None:
    # a read-only install with no writable cache directory: numba finds no cache locator and, asked to cache,
    # raises at import; the kernels then compile in each process instead
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "numba.core.caching.ZipCacheLocator"}
    code = ("import numpy as np\nfrom kubeagora.sim import kernels\nd = np.zeros(600)\n"
            "kernels.scatter_points(np.array([3.0]), np.array([2.0]), d)\nprint(d[3], d[4])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2.0", "-2.0"]
