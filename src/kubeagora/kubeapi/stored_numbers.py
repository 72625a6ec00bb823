"""JSON values as the API server gives them back: a whole float (``4.0``) comes back as an integer
(``4``), so anything signed before it is stored must be normalised the same way (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def whole_numbers(value: Any) -> Any:
    """``value`` with every whole, finite float written as an int, mapping keys as strings; the rest as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [whole_numbers(v) for v in value]
    return value
