"""Hypothesis strategies for the bodies the fuzz tests POST: Kubernetes-shaped objects whose every field
may instead hold a value of the wrong type, an extreme number or a string that is almost a quantity."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kubeagora.sim.catalog import TEMPLATES

NAMES = ("r0", "r1", "g0", "t0", "m0")
"""The nodes of the fuzzed extender's cache (see ``test_fuzz_extender.fuzz_cache``)."""

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def sometimes_wrong(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly (9 in 10) the well-formed value, sometimes any JSON value at all: deep fields are reached
    well-formed often enough for the extender to answer, and each one is sometimes wrong."""
    return st.integers(0, 9).flatmap(lambda k: good if k else json_values)


quantities = sometimes_wrong(st.one_of(
    st.sampled_from(["1", "0", "500m", "2Gi", "1k", "1e3", "1E", "9e18", "1e19", "inf", "-inf", "nan", "-1", "1e400",
                     "", " ", ".5", "5.", "1.5Ti", "0x10", "1_000", "1e-400", "١"]),
    st.integers(0, 2**64 - 1), st.floats(0, 1e300), st.text(max_size=6)))
label_maps = sometimes_wrong(st.one_of(
    st.sampled_from([{"app": "checkout"}, {"app": "llm"}, {"kubeagora.io/service": "llm", "app": "x"}]),
    st.dictionaries(st.sampled_from(["app", "kubeagora.io/service", "tier", "x"]),
                    sometimes_wrong(st.sampled_from(["web", "llm", "checkout", ""])), max_size=3)))
annotation_maps = sometimes_wrong(st.fixed_dictionaries(
    {"kubeagora.io/template": sometimes_wrong(st.sampled_from([*TEMPLATES, "", "nope"]))},
    optional={key: sometimes_wrong(st.one_of(st.sampled_from(["region-0", "region-1", "1e9", "nan", "-3", "0"]),
                                             st.text(max_size=8)))
              for key in ("kubeagora.io/origin-region", "kubeagora.io/speed-factor", "kubeagora.io/carbon-g-per-kwh",
                          "kubeagora.io/gpu-throttle-factor", "other")}))
resource_maps = sometimes_wrong(st.dictionaries(
    st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "google.com/tpu", "pods"]), quantities, max_size=4))
containers = sometimes_wrong(st.fixed_dictionaries(
    {}, optional={"name": sometimes_wrong(st.just("app")),
                  "resources": sometimes_wrong(st.fixed_dictionaries(
                      {}, optional={"requests": resource_maps, "limits": resource_maps}))}))
metadata = sometimes_wrong(st.fixed_dictionaries(
    {"name": sometimes_wrong(st.sampled_from(["p", "checkout-1", "llm-0"]))},
    optional={"namespace": sometimes_wrong(st.sampled_from(["shop", "shop", "default"])), "labels": label_maps,
              "annotations": annotation_maps}))
pods = st.fixed_dictionaries({"metadata": metadata}, optional={
    "spec": sometimes_wrong(st.fixed_dictionaries({}, optional={
        "containers": sometimes_wrong(st.lists(containers, max_size=3)),
        "nodeName": sometimes_wrong(st.sampled_from(NAMES))})),
    "status": json_values})
conditions = sometimes_wrong(st.lists(sometimes_wrong(st.fixed_dictionaries(
    {"type": sometimes_wrong(st.just("Ready")), "status": sometimes_wrong(st.sampled_from(["True", "False"]))})),
    max_size=2))
nodes = st.fixed_dictionaries({"metadata": sometimes_wrong(st.fixed_dictionaries(
    {"name": sometimes_wrong(st.sampled_from(NAMES))},
    optional={"labels": sometimes_wrong(st.dictionaries(
        st.sampled_from(["kubeagora.io/tier", "kubeagora.io/node-class", "topology.kubernetes.io/region",
                         "topology.kubernetes.io/zone"]),
        sometimes_wrong(st.sampled_from(["edge", "fog", "cloud", "cpu", "gpu", "tpu", "mcu", "region-0", "z"])),
        max_size=4)), "annotations": annotation_maps}))},
    optional={"spec": sometimes_wrong(st.fixed_dictionaries({}, optional={"unschedulable": json_values})),
              "status": sometimes_wrong(st.fixed_dictionaries({}, optional={
                  "allocatable": resource_maps, "capacity": resource_maps, "conditions": conditions}))})
node_names = sometimes_wrong(st.lists(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), max_size=8))
by_name = st.fixed_dictionaries({"Pod": sometimes_wrong(pods), "NodeNames": node_names})
in_full = st.fixed_dictionaries({"Pod": sometimes_wrong(pods), "Nodes": sometimes_wrong(st.fixed_dictionaries(
    {"items": sometimes_wrong(st.lists(sometimes_wrong(nodes), max_size=4))}))})
extender_args = st.integers(0, 9).flatmap(lambda k: by_name if k < 6 else in_full if k < 9 else json_values)
"""ExtenderArgs-like bodies (as JSON values: dump them with orjson)."""

extreme_quantities = st.one_of(st.sampled_from(["0", "1e-9", "1n", "9223372036854775807", "9e18", "8Ei", "1E", "4",
                                                "1"]),
                               st.integers(0, 2**63), st.floats(0, 2.0**63))
extreme_resources = st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "google.com/tpu"]),
                                    extreme_quantities, max_size=4)
well_formed_pods = st.fixed_dictionaries({
    "metadata": st.fixed_dictionaries({
        "name": st.just("p"), "namespace": st.just("shop"),
        "labels": st.sampled_from([{"app": "checkout"}, {"app": "llm"}, {}]),
        "annotations": st.fixed_dictionaries({"kubeagora.io/template": st.sampled_from([*TEMPLATES, "x"])}, optional={
            "kubeagora.io/origin-region": st.sampled_from(["region-0", "region-1", "elsewhere"])})}),
    "spec": st.fixed_dictionaries({"containers": st.lists(st.fixed_dictionaries({"resources": st.fixed_dictionaries(
        {}, optional={"requests": extreme_resources, "limits": extreme_resources})}), max_size=3)})})
extreme_args = st.fixed_dictionaries({"Pod": well_formed_pods,
                                      "NodeNames": st.lists(st.sampled_from(NAMES), max_size=6, unique=True)})
"""Well-formed ExtenderArgs whose quantities run from a nano-unit to 2^63: the scoring's arithmetic."""
