"""Request bodies of the mock kubelet's admin endpoints (``/faults``, ``/load``): bounded JSON (pure).

The admin port takes small JSON objects from tests and demos. A body is read whole (at most
``MAX_ADMIN_BODY_BYTES``; aiohttp answers 413 past it) and parsed with orjson, which refuses nesting
deeper than 1,024 levels and numbers that overflow to infinity: every bad body is a ValueError with
a reason (HTTP 400), never a RecursionError or a TypeError further in.
"""

from __future__ import annotations

import orjson

MAX_ADMIN_BODY_BYTES = 64 * 1024
"""The largest admin request body; the biggest real one (a fault naming a node) is under 200 bytes."""


def json_object(raw: bytes) -> dict[str, object]:
    """The body as a JSON object; ValueError naming what is wrong (not JSON, not an object)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"the body is not JSON ({e})") from None
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body
