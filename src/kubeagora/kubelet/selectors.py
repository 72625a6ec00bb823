"""Kubernetes label selectors in their string form (``?labelSelector=``): parse and match (pure).

The grammar of ``k8s.io/apimachinery/pkg/labels``, comma-separated requirements:

    key=value  key==value  key!=value        equality
    key in (a,b)  key notin (a,b)            sets
    key  !key                                exists / does not exist

A key may carry a DNS-subdomain prefix (``kubeagora.io/service``). ``!=`` and ``notin`` also
match an object without the key, as upstream does. Anything else is a ``ValueError`` that says
what was wrong, for a 400 reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
OPERATORS = ("=", "!=", "in", "notin", "exists", "!exists")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    """One of ``OPERATORS`` (``==`` is read as ``=``)."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin


Selector = tuple[Requirement, ...]
"""All requirements must hold; the empty selector matches everything."""


def _split(text: str) -> list[str]:
    """Split on the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"label selector {text!r}: unbalanced ')'")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"label selector {text!r}: unbalanced '('")
    parts.append(text[start:])
    return parts


def _key(key: str, text: str) -> str:
    if not _KEY.match(key) or len(key.rpartition("/")[2]) > 63:
        raise ValueError(f"label selector {text!r}: {key!r} is not a valid label key")
    return key


def _value(value: str, text: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise ValueError(f"label selector {text!r}: {value!r} is not a valid label value")
    return value


def _requirement(part: str, text: str) -> Requirement:
    m = _SET.match(part)
    if m:
        values = [v.strip() for v in m.group(3).split(",")]
        if values == [""]:
            raise ValueError(f"label selector {text!r}: '{m.group(2)}' needs at least one value")
        return Requirement(_key(m.group(1), text), m.group(2), frozenset(_value(v, text) for v in values))
    for op, name in (("!=", "!="), ("==", "="), ("=", "=")):
        if op in part:
            key, _, value = part.partition(op)
            return Requirement(_key(key.strip(), text), name, frozenset({_value(value.strip(), text)}))
    if part.startswith("!"):
        return Requirement(_key(part[1:].strip(), text), "!exists")
    return Requirement(_key(part, text), "exists")


def parse_selector(text: str | None) -> Selector:
    """A ``labelSelector`` query value; None or blank selects everything."""
    if text is None or not text.strip():
        return ()
    out = []
    for raw in _split(text):
        part = raw.strip()
        if not part:
            raise ValueError(f"label selector {text!r}: empty requirement")
        out.append(_requirement(part, text))
    return tuple(out)


def matches(selector: Selector, labels: Mapping[str, str] | None) -> bool:
    have = labels or {}
    return all(r.matches(have) for r in selector)
