"""``-o table|json|yaml``: the one output option of every command that prints a table.

A table is for a person; ``-o json`` and ``-o yaml`` print the same rows as data for a script (as
kubectl's ``-o``), on stdout, with nothing else around them. Commands build plain rows (dicts of
str/int/float/bool/None and lists of them) and hand them to `print_data` when the format is not a
table. Only the standard library and typer are imported here: the CLI's ``--help`` must stay fast.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Annotated, Any

import typer


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


Output = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people; json or yaml for scripts (the same fields).",
                 case_sensitive=False),
]


def _finite(data: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers (and a script should not meet them in YAML)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def render_data(data: Any, fmt: OutputFormat) -> str:
    """`data` as JSON (2-space indent, keys in their order) or block-style YAML; ends with a newline.
    Non-finite floats are written as null."""
    data = _finite(data)
    if fmt is OutputFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt is OutputFormat.YAML:
        import yaml  # ~50 ms; only when asked for

        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False))
    raise ValueError(f"{fmt} is not a data format")


def print_data(data: Any, fmt: OutputFormat) -> None:
    typer.echo(render_data(data, fmt), nl=False)
