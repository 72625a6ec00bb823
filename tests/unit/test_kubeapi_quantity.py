"""Kubernetes quantities as numbers: every suffix the API server writes."""

from __future__ import annotations

import pytest

from kubeagora.kubeapi.quantity import quantity


@pytest.mark.parametrize(("text", "value"), [
    ("500m", 0.5), ("2", 2.0), ("250000n", 2.5e-4), ("1500000u", 1.5), ("1Ki", 1024.0), ("256Mi", 256 * 2.0**20),
    ("2Gi", 2 * 2.0**30), ("1Ti", 2.0**40), ("1Pi", 2.0**50), ("1k", 1e3), ("1M", 1e6), ("1G", 1e9), ("1T", 1e12),
    ("1P", 1e15), ("1E", 1e18), (" 3 ", 3.0), (7, 7.0), (0.25, 0.25), (None, 0.0), ("", 0.0), ("lots", 0.0),
])
def test_quantities(text: str | int | float | None, value: float) -> None:
    assert quantity(text) == pytest.approx(value)
