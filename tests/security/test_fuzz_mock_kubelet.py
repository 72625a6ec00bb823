"""Fuzzing the mock kubelet's admin endpoints (``POST /faults``, ``POST /load``) with hypothesis.

Bodies are arbitrary JSON values and fault/load-shaped objects whose fields hold the wrong type,
extreme numbers or unknown names. Over HTTP (the aiohttp app the mock kubelet serves, in-process)
every body is answered (200) or refused (400/413) — never a 500 — and the kubelet still answers
``/status`` afterwards. A kubelet that has not started serves no pods, so a load body that passes
its parser is refused as naming no service here: the fuzzing reaches the parsers and the fault
schedule, not the load arithmetic (``tests/security/test_mock_kubelet_bodies.py`` covers its bounds).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeagora.kubelet.faults import NODE_FAULT_KINDS
from kubeagora.kubelet.main import MockKubelet, Options
from kubeagora.kubelet.plan import make_plan

KUBELET = MockKubelet(make_plan(None, 6, seed=1), Options(kubeconfig=Path("unused-kubeconfig")))
NODE = KUBELET.names[0]

numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0, -1, 1e308, -1e308, 5e-324]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
"""Any JSON value (no NaN or infinity: JSON has none; the strict decoder refuses their spellings)."""


kinds = st.sampled_from(NODE_FAULT_KINDS)
services = st.sampled_from(["web", "default/web"])
valid_faults = st.one_of(
    st.fixed_dictionaries({"kind": kinds, "node": st.just(NODE)},
                          optional={"duration_s": st.floats(1, 3600), "factor": st.floats(0.1, 1)}),
    st.fixed_dictionaries({"kind": kinds, "zone": st.sampled_from(["region-0", "nowhere"])}),
    st.fixed_dictionaries({"kind": st.just("pod-crash"), "service": services}),
)
valid_loads = st.one_of(st.fixed_dictionaries({"service": services, "rps": st.floats(0, 1e4)}),
                        st.fixed_dictionaries({"service": services, "factor": st.floats(0, 10)}))
FAULT_FIELDS = ("kind", "node", "zone", "service", "duration_s", "factor", "extra")
LOAD_FIELDS = ("service", "rps", "factor", "other")


def one_field_broken(valid: st.SearchStrategy[dict[str, Any]], fields: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """A valid body with one field set to any JSON value (added if absent) or removed: the shapes a parser
    that checks each field on its own must still refuse with a 400."""
    @st.composite
    def broken(draw: st.DrawFn) -> dict[str, Any]:
        body = dict(draw(valid))
        name = draw(st.sampled_from(fields))
        if draw(st.booleans()) and name in body:
            del body[name]
        else:
            body[name] = draw(st.one_of(json_values, numbers))
        return body

    return broken()


fault_bodies = st.one_of(valid_faults, one_field_broken(valid_faults, FAULT_FIELDS), json_values)
load_bodies = st.one_of(valid_loads, one_field_broken(valid_loads, LOAD_FIELDS), json_values)


def post_all(path: str, bodies: list[Any]) -> list[tuple[int, str]]:
    async def main() -> list[tuple[int, str]]:
        async with TestClient(TestServer(KUBELET.web_app())) as client:
            answers = []
            for body in bodies:
                resp = await client.post(path, data=json.dumps(body).encode())
                answers.append((resp.status, (await resp.text())[:300]))
            status = await client.get("/status")
            answers.append((status.status, "GET /status afterwards"))
            await client.delete("/faults")  # faults the fuzzer added must not pile up between examples
            return answers

    return asyncio.run(main())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fault_bodies, min_size=1, max_size=5))
def test_no_fault_body_gets_a_500(bodies: list[Any]) -> None:
    for status, text in post_all("/faults", bodies):
        assert status in (200, 400, 413), f"{status}: {text}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(load_bodies, min_size=1, max_size=5))
def test_no_load_body_gets_a_500(bodies: list[Any]) -> None:
    for status, text in post_all("/load", bodies):
        assert status in (200, 400, 413), f"{status}: {text}"
