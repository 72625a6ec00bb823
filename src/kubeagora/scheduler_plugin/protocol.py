"""The scheduler extender wire format, as kube-scheduler speaks it (k8s.io/kube-scheduler/extender/v1).

The Go types carry no JSON tags, so the keys are the Go field names: the scheduler POSTs
``{"Pod": {...}, "Nodes": {"items": [...]}, "NodeNames": [...]}`` (``NodeNames`` when the extender is
``nodeCacheCapable``, else full ``Nodes``) and reads back, for the filter verb,
``{"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}`` and, for the
prioritize verb, a list of ``{"Host", "Score"}``. The scheduler answers in kind: when it sent
``NodeNames`` it reads ``NodeNames`` back; when it sent ``Nodes`` it reads ``Nodes``. Scores run from
0 to ``MAX_EXTENDER_PRIORITY`` (10); the scheduler multiplies them by the extender's weight and by
MaxNodeScore / MaxExtenderPriority (100 / 10) before adding them to its plugins' scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kubeagora.kubeapi.quantity import checked_quantity

MAX_EXTENDER_PRIORITY = 10
"""extenderv1.MaxExtenderPriority: the highest score an extender may give a node."""


class MalformedRequest(ValueError):
    """The request body is not an ExtenderArgs; the message says what is wrong (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class ExtenderArgs:
    pod: Mapping[str, Any]
    node_names: tuple[str, ...]
    nodes: tuple[Mapping[str, Any], ...] | None
    """The full Node objects when the scheduler sent them (not ``nodeCacheCapable``), in order."""


def parse_extender_args(body: bytes) -> ExtenderArgs:
    """ExtenderArgs from a request body; MalformedRequest naming the first thing wrong (the
    body's JSON, its envelope, or a field of the Pod or a Node that the extender reads)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedRequest(f"body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("body must be a JSON object with Pod and NodeNames (or Nodes)")
    pod = data.get("Pod")
    if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
        raise MalformedRequest("field Pod must be a Pod object with metadata")
    check_pod(pod)
    names = data.get("NodeNames")
    node_list = data.get("Nodes")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MalformedRequest("field NodeNames must be a list of strings")
        _once_each(names, "NodeNames")
        return ExtenderArgs(pod, tuple(names), None)
    if node_list is None:
        raise MalformedRequest("one of NodeNames or Nodes is required")
    items = node_list.get("items") if isinstance(node_list, dict) else None
    if not isinstance(node_list, dict) or not isinstance(items, list | None):
        raise MalformedRequest("field Nodes must be a NodeList with items")
    nodes = tuple(items or ())
    if not all(isinstance(n, dict) and isinstance(n.get("metadata"), dict)
               and isinstance(n["metadata"].get("name"), str) for n in nodes):
        raise MalformedRequest("every item of Nodes.items must be a Node with metadata.name")
    for i, n in enumerate(nodes):
        check_node(n, f"Nodes.items[{i}]")
    names = [n["metadata"]["name"] for n in nodes]
    _once_each(names, "Nodes.items")
    return ExtenderArgs(pod, tuple(names), nodes)


def _once_each(names: Sequence[str], where: str) -> None:
    """The scheduler offers each feasible node once; a repeated name is a forged body (and would make
    the verbs' work grow with the body, not with the cluster)."""
    if len(set(names)) != len(names):
        raise MalformedRequest(f"field {where} names a node more than once")


# --- the shapes of the fields the extender reads ---------------------------------------------------
# The API server validates what it stores, but anything that can reach the port can POST a body: each
# field the filter and the bids read is checked here, so a wrong type is a 400 naming it, not a 500
# from deep inside the scoring. Fields the extender does not read are not looked at.


def _object(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedRequest(f"{where}.{key} must be an object, not {type(value).__name__}")
    return value


def _list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedRequest(f"{where}.{key} must be a list, not {type(value).__name__}")
    return value


def _string_map(parent: Mapping[str, Any], key: str, where: str) -> None:
    value = _object(parent, key, where)
    if not all(isinstance(v, str) for v in value.values()):
        raise MalformedRequest(f"{where}.{key} must map strings to strings")


def _strings(parent: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    for key in keys:
        if parent.get(key) is not None and not isinstance(parent[key], str):
            raise MalformedRequest(f"{where}.{key} must be a string, not {type(parent[key]).__name__}")


def _quantities(parent: Mapping[str, Any], key: str, where: str) -> None:
    for name, value in _object(parent, key, where).items():
        try:
            checked_quantity(value)
        except ValueError as e:
            raise MalformedRequest(f"{where}.{key}[{name[:60]!r}]: {e}") from None


def _metadata(obj: Mapping[str, Any], where: str) -> None:
    meta = _object(obj, "metadata", where)
    _strings(meta, ("name", "namespace"), f"{where}.metadata")
    _string_map(meta, "labels", f"{where}.metadata")
    _string_map(meta, "annotations", f"{where}.metadata")


def check_pod(pod: Mapping[str, Any]) -> None:
    """MalformedRequest naming the first field of the Pod the extender reads that has the wrong shape."""
    _metadata(pod, "Pod")
    spec = _object(pod, "spec", "Pod")
    for i, container in enumerate(_list(spec, "containers", "Pod.spec")):
        where = f"Pod.spec.containers[{i}]"
        if not isinstance(container, dict):
            raise MalformedRequest(f"{where} must be an object, not {type(container).__name__}")
        resources = _object(container, "resources", where)
        _quantities(resources, "requests", f"{where}.resources")
        _quantities(resources, "limits", f"{where}.resources")


def check_node(node: Mapping[str, Any], where: str) -> None:
    """MalformedRequest naming the first field of a Node the extender reads that has the wrong shape."""
    _metadata(node, where)
    spec = _object(node, "spec", where)
    if spec.get("unschedulable") is not None and not isinstance(spec["unschedulable"], bool):
        raise MalformedRequest(f"{where}.spec.unschedulable must be true or false")
    status = _object(node, "status", where)
    _quantities(status, "allocatable", f"{where}.status")
    _quantities(status, "capacity", f"{where}.status")
    for i, condition in enumerate(_list(status, "conditions", f"{where}.status")):
        if not isinstance(condition, dict):
            raise MalformedRequest(f"{where}.status.conditions[{i}] must be an object")


def filter_result(args: ExtenderArgs, passed: Sequence[str], failed: Mapping[str, str],
                  unresolvable: Mapping[str, str], error: str = "") -> dict[str, Any]:
    """An ExtenderFilterResult answering ``args`` in the form it was asked (names or full nodes)."""
    result: dict[str, Any] = {"FailedNodes": dict(failed), "FailedAndUnresolvableNodes": dict(unresolvable),
                              "Error": error}
    if args.nodes is None:
        result["NodeNames"], result["Nodes"] = list(passed), None
    else:
        keep = set(passed)
        result["NodeNames"] = None
        result["Nodes"] = {"items": [n for n in args.nodes if n["metadata"]["name"] in keep]}
    return result


def host_priority_list(scores: Mapping[str, int]) -> list[dict[str, Any]]:
    """A HostPriorityList; scores are clamped to 0..MAX_EXTENDER_PRIORITY."""
    return [{"Host": host, "Score": max(0, min(MAX_EXTENDER_PRIORITY, int(score)))} for host, score in scores.items()]
