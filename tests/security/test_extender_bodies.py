"""Wrong-typed fields inside the Pod or a Node of an ExtenderArgs: a 400 naming the field, never a 500.

On today's main 17 filter and 15 prioritize cases answered 500 (e.g. labels as a list; a GPU quantity
"inf" raised OverflowError while scoring): with ``ignorable: true`` the scheduler then skips the
extender for that pod, and its placement rules are not applied.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.extender_objects import cache_of, deployment, intent, node, pod

from kubeagora.scheduler_plugin.server import make_app

POD = pod("checkout-1", labels={"app": "checkout"}, template="web", gpus=1)
NODE = {**node("g0", node_class="gpu", gpus=4), "spec": {"unschedulable": False}}


def cluster() -> Any:
    return cache_of([node("r0"), node("r1", region="region-1"), NODE], deployments=[deployment("checkout")],
                    intents=[intent("checkout", "checkout", regions=["region-1"])])


def edited(obj: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    edit(out)
    return out


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value

    return edit


REQUESTS = "spec.containers.0.resources.requests"
WRONG_PODS = [
    ("metadata.labels", ["app", "checkout"], "Pod.metadata.labels"),
    ("metadata.labels", {"app": 7}, "Pod.metadata.labels"),
    ("metadata.labels", "app=checkout", "Pod.metadata.labels"),
    ("metadata.annotations", ["x"], "Pod.metadata.annotations"),
    ("metadata.annotations", {"kubeagora.io/template": ["web"]}, "Pod.metadata.annotations"),
    ("metadata.annotations", {"kubeagora.io/origin-region": {"r": 1}}, "Pod.metadata.annotations"),
    ("metadata.name", ["checkout-1"], "Pod.metadata.name"),
    ("metadata.namespace", {"ns": "shop"}, "Pod.metadata.namespace"),
    ("spec", [], "Pod.spec"),
    ("spec.containers", {"app": {}}, "Pod.spec.containers"),
    ("spec.containers", [1], "Pod.spec.containers[0]"),
    ("spec.containers.0.resources", "lots", "Pod.spec.containers[0].resources"),
    (REQUESTS, ["cpu"], "Pod.spec.containers[0].resources.requests"),
    (f"{REQUESTS}.nvidia.com/gpu", "inf", "nvidia.com/gpu"),
    (f"{REQUESTS}.nvidia.com/gpu", "nan", "nvidia.com/gpu"),
    (f"{REQUESTS}.nvidia.com/gpu", "1e400", "nvidia.com/gpu"),
    (f"{REQUESTS}.nvidia.com/gpu", "-1", "nvidia.com/gpu"),
    (f"{REQUESTS}.cpu", ["1"], "'cpu'"),
    (f"{REQUESTS}.cpu", {"m": 500}, "'cpu'"),
    (f"{REQUESTS}.cpu", True, "'cpu'"),
    (f"{REQUESTS}.memory", "1Gb", "'memory'"),
]
WRONG_NODES = [
    ("metadata.labels", ["gpu"], "Nodes.items[0].metadata.labels"),
    ("metadata.annotations", {"kubeagora.io/speed-factor": 1e9}, "Nodes.items[0].metadata.annotations"),
    ("status", [], "Nodes.items[0].status"),
    ("status.allocatable", {"nvidia.com/gpu": "inf"}, "nvidia.com/gpu"),
    ("status.allocatable", ["cpu"], "Nodes.items[0].status.allocatable"),
    ("status.conditions", {"Ready": True}, "Nodes.items[0].status.conditions"),
    ("status.conditions", ["Ready"], "Nodes.items[0].status.conditions[0]"),
    ("spec", "cordoned", "Nodes.items[0].spec"),
    ("spec.unschedulable", "yes", "Nodes.items[0].spec.unschedulable"),
]


def post_both(bodies: list[bytes]) -> list[tuple[int, str]]:
    async def main() -> list[tuple[int, str]]:
        out = []
        async with TestClient(TestServer(make_app(cluster()))) as client:
            for body in bodies:
                for verb in ("filter", "prioritize"):
                    resp = await client.post(f"/{verb}", data=body)
                    out.append((resp.status, await resp.text()))
        return out

    return asyncio.run(main())


@pytest.mark.parametrize(("path", "value", "named"), WRONG_PODS, ids=[f"pod-{p}-{i}" for i, (p, _, _) in
                                                                      enumerate(WRONG_PODS)])
def test_a_wrong_typed_pod_field_is_a_400_naming_it(path: str, value: Any, named: str) -> None:
    if path.startswith(REQUESTS + "."):
        resource = path.removeprefix(REQUESTS + ".")
        body_pod = edited(POD, lambda p: p["spec"]["containers"][0]["resources"]["requests"].__setitem__(resource,
                                                                                                         value))
    else:
        body_pod = edited(POD, _set(path, value))
    body = json.dumps({"Pod": body_pod, "NodeNames": ["r0", "r1", "g0"]}).encode()
    for status, text in post_both([body]):
        assert status == 400, text[:300]
        assert named in json.loads(text)["error"]


@pytest.mark.parametrize(("path", "value", "named"), WRONG_NODES, ids=[f"node-{p}-{i}" for i, (p, _, _) in
                                                                       enumerate(WRONG_NODES)])
def test_a_wrong_typed_node_field_is_a_400_naming_it(path: str, value: Any, named: str) -> None:
    if path == "status.allocatable" and isinstance(value, dict):
        bad = edited(NODE, lambda n: n["status"]["allocatable"].update(value))
    else:
        bad = edited(NODE, _set(path, value))
    body = json.dumps({"Pod": POD, "Nodes": {"items": [bad]}}).encode()
    for status, text in post_both([body]):
        assert status == 400, text[:300]
        assert named in json.loads(text)["error"]


def test_go_nulls_for_empty_maps_and_lists_are_well_formed() -> None:
    """kube-scheduler encodes nil maps and slices as null: they are absent, not wrong."""
    nulls = edited(POD, lambda p: p["metadata"].update(labels=None, annotations=None))
    nulls["spec"]["containers"][0]["resources"]["limits"] = None
    bare = edited(NODE, lambda n: n["metadata"].update(labels=None, annotations=None))
    bare["status"]["conditions"] = None
    bodies = [json.dumps({"Pod": nulls, "NodeNames": ["r0", "g0"]}).encode(),
              json.dumps({"Pod": POD, "Nodes": {"items": [bare]}}).encode()]
    assert [status for status, _ in post_both(bodies)] == [200, 200, 200, 200]
