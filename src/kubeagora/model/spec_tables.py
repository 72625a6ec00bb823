"""Tables derived from a run's static specs (its services and nodes tuples), computed once per run.

Observations of one run share their `services` and `nodes` tuples (the engine and the cluster
adapter build them once), so anything that depends on the specs alone, e.g. the [service, node class]
service-time table, is the same every tick. A controller at 1,000 services asks for such tables
dozens of times a tick; `per_specs` builds each once and hands back the same (read-only) value while
the tuples are the same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

_Value = TypeVar("_Value")

_TABLES: dict[tuple[str, tuple[int, ...]], tuple[tuple[object, ...], Any]] = {}
"""(table name, ids of the specs) → (the specs, the table). The specs are held in the entry, so their
ids are not reused while the entry lives."""

_MAX_TABLES = 256


def per_specs(name: str, specs: tuple[object, ...], build: Callable[[], _Value]) -> _Value:
    """`build()`, computed once for these spec objects (compared by identity) under `name`.

    numpy arrays in the value (alone or in a tuple) are made read-only: the value is shared by every
    caller, so a caller that needs to change one copies it first."""
    key = (name, tuple(id(s) for s in specs))
    hit = _TABLES.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], specs, strict=True)):
        return hit[1]  # type: ignore[no-any-return]
    value = build()
    for item in value if isinstance(value, tuple) else (value,):
        if isinstance(item, np.ndarray):
            item.setflags(write=False)
    if len(_TABLES) >= _MAX_TABLES:
        _TABLES.clear()
    _TABLES[key] = (specs, value)
    return value


def spec_column(specs: tuple[Any, ...], attribute: str, dtype: type = np.float64) -> Any:
    """[spec] the attribute of every spec (e.g. the services' `concurrency`) as an array, once per run."""
    return per_specs(f"column.{attribute}.{np.dtype(dtype).str}", (specs,),
                     lambda: np.array([getattr(s, attribute) for s in specs], dtype=dtype).reshape(len(specs)))


__all__ = ["per_specs", "spec_column"]
