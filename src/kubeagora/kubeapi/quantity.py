"""Kubernetes resource quantities ("500m", "2", "250000n", "1Gi", "1.5e3") as plain numbers (pure)."""

from __future__ import annotations

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
