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
    """ExtenderArgs from a request body; MalformedRequest naming the first thing wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedRequest(f"body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("body must be a JSON object with Pod and NodeNames (or Nodes)")
    pod = data.get("Pod")
    if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
        raise MalformedRequest("field Pod must be a Pod object with metadata")
    names = data.get("NodeNames")
    node_list = data.get("Nodes")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MalformedRequest("field NodeNames must be a list of strings")
        return ExtenderArgs(pod, tuple(names), None)
    if node_list is None:
        raise MalformedRequest("one of NodeNames or Nodes is required")
    items = node_list.get("items") if isinstance(node_list, dict) else None
    if not isinstance(node_list, dict) or not isinstance(items, list | None):
        raise MalformedRequest("field Nodes must be a NodeList with items")
    nodes = tuple(items or ())
    if not all(isinstance(n, dict) and isinstance((n.get("metadata") or {}).get("name"), str) for n in nodes):
        raise MalformedRequest("every item of Nodes.items must be a Node with metadata.name")
    return ExtenderArgs(pod, tuple(n["metadata"]["name"] for n in nodes), nodes)


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
