"""Tables computed once per run's specs: the same value for the same spec objects, a new one for others."""

from __future__ import annotations

import numpy as np
import pytest

from kubeagora.model.spec_tables import per_specs


def test_a_table_is_built_once_per_spec_objects_and_is_read_only() -> None:
    builds: list[int] = []
    specs = ("a", "b")

    def build() -> np.ndarray:
        builds.append(1)
        return np.arange(3.0)

    first = per_specs("test.table", (specs,), build)
    again = per_specs("test.table", (specs,), build)
    assert again is first
    assert len(builds) == 1
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 5.0
    equal_but_other = specs[:1] + specs[1:]  # equal, not the same object: built anew
    other = per_specs("test.table", (equal_but_other,), build)
    assert equal_but_other is not specs
    assert len(builds) == 2
    assert other is not first
    per_specs("test.other-table", (specs,), build)  # another table of the same specs
    assert len(builds) == 3
