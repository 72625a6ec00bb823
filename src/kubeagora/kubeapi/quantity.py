"""Kubernetes resource quantities ("500m", "2", "250000n", "1Gi", "1.5e3") as plain numbers (pure)."""

from __future__ import annotations

import math
import re

_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50,
           "Ei": 2.0**60}
_ORDER = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E")


def quantity(text: str | int | float | None) -> float:
    """A quantity as a number (cores for CPU, bytes for memory); 0 for none or an unreadable one."""
    if text is None:
        return 0.0
    if isinstance(text, int | float):
        return float(text)
    s = text.strip()
    for suffix in _ORDER:
        if s.endswith(suffix):
            number, factor = s[: -len(suffix)], _SUFFIX[suffix]
            break
    else:
        number, factor = s, 1.0
    try:
        return float(number) * factor
    except ValueError:
        return 0.0


_GRAMMAR = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")
MAX_QUANTITY = 2.0**63
"""Quantities are int64-scaled in the API server; anything past 2^63 is not one it could have stored."""


def checked_quantity(value: object) -> float:
    """A quantity from an untrusted body: a number or a string in the API server's grammar, finite and
    in [0, MAX_QUANTITY]; ValueError saying what is wrong otherwise (never inf, NaN or a negative)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a quantity must be a string or a number, not {type(value).__name__}")
    if isinstance(value, str) and not _GRAMMAR.fullmatch(value.strip()):
        raise ValueError(f"{value[:40]!r} is not a quantity")
    try:
        number = quantity(value)
    except OverflowError:  # an int past a float's range
        number = math.inf
    if not 0.0 <= number <= MAX_QUANTITY:  # NaN fails both
        raise ValueError(f"{str(value)[:40]!r} is outside [0, 2^63]")
    return number
