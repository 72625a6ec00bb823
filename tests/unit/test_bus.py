"""The bus: priority lanes, coalescing, backpressure, bounded drains and request-reply."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kubeagora.agents.base import Lane, Proposal
from kubeagora.coordination.bus import Bus, BusLimits
from kubeagora.coordination.events import Incident, PricesPosted, ProposalPublished, ServiceMetrics, SloAlert
from kubeagora.model import Scale


def metrics(service: str, time_s: float = 0.0, p99_ms: float = 100.0) -> ServiceMetrics:
    return ServiceMetrics(service, time_s, arrival_rps=10.0, p95_ms=80.0, p99_ms=p99_ms, ready_replicas=2)


def recording_bus(limits: BusLimits | None = None) -> tuple[Bus, list[object]]:
    bus = Bus(limits)
    seen: list[object] = []
    bus.subscribe(object, seen.append)
    return bus, seen


def test_an_slo_alert_published_after_a_thousand_routine_metrics_is_delivered_first() -> None:
    bus, seen = recording_bus()
    for i in range(1000):
        bus.publish(metrics(f"svc-{i}"))
    alert = SloAlert("svc-7", time_s=1.0, p99_ms=400.0, slo_p99_ms=250.0)
    bus.publish(alert)

    report = bus.drain()

    assert seen[0] is alert
    assert report.delivered == 1001
    assert report.delivered_by_lane == {Lane.ROUTINE: 1000, Lane.SLO: 1, Lane.INCIDENT: 0}


def test_lanes_deliver_incident_then_slo_then_routine_and_fifo_within_a_lane() -> None:
    bus, seen = recording_bus()
    bus.publish(metrics("a"))
    bus.publish(SloAlert("a", 0.0, 300.0, 250.0))
    bus.publish(metrics("b"))
    bus.publish(Incident("node_not_ready", "node-3", 0.0))
    bus.publish(SloAlert("b", 0.0, 300.0, 250.0))
    bus.drain()
    order = [(type(e).__name__, getattr(e, "service", getattr(e, "subject", ""))) for e in seen]
    assert order == [("Incident", "node-3"), ("SloAlert", "a"), ("SloAlert", "b"),
                     ("ServiceMetrics", "a"), ("ServiceMetrics", "b")]


def test_coalescing_keeps_only_the_newest_event_per_key_in_the_oldest_place() -> None:
    bus, seen = recording_bus()
    bus.publish(metrics("web", time_s=1.0))
    bus.publish(metrics("api", time_s=1.0))
    bus.publish(metrics("web", time_s=2.0))
    bus.publish(metrics("web", time_s=3.0))
    bus.drain()
    assert [(e.service, e.time_s) for e in seen if isinstance(e, ServiceMetrics)] == [("web", 3.0), ("api", 1.0)]
    assert bus.counters.coalesced[Lane.ROUTINE] == 2
    assert bus.counters.dropped[Lane.ROUTINE] == 0


def test_coalescing_keys_are_scoped_by_event_type() -> None:
    bus, seen = recording_bus()
    bus.publish(metrics("web"))
    bus.publish(SloAlert("web", 0.0, 300.0, 250.0))
    bus.publish(PricesPosted(0.0, {"cpu:region-0": 1.0}))
    bus.publish(PricesPosted(1.0, {"cpu:region-0": 2.0}))
    bus.drain()
    assert len(seen) == 3  # the metric and the alert share "web" but are different types
    prices = [e for e in seen if isinstance(e, PricesPosted)]
    assert prices[0].price_per_unit == {"cpu:region-0": 2.0}


def test_a_full_routine_lane_drops_its_oldest_event_and_counts_it() -> None:
    bus, seen = recording_bus(BusLimits(routine=3, slo=3, total=100))
    for i in range(5):
        bus.publish(metrics(f"svc-{i}"))
    assert bus.queued(Lane.ROUTINE) == 3
    bus.drain()
    assert [e.service for e in seen if isinstance(e, ServiceMetrics)] == ["svc-2", "svc-3", "svc-4"]
    assert bus.counters.dropped[Lane.ROUTINE] == 2


def test_when_the_bus_is_full_routine_events_go_before_slo_alerts_and_incidents_are_never_dropped() -> None:
    bus, seen = recording_bus(BusLimits(routine=10, slo=10, total=4))
    for i in range(4):
        bus.publish(metrics(f"svc-{i}"))
    # two alerts push out the two oldest metrics
    bus.publish(SloAlert("a", 0.0, 300.0, 250.0))
    bus.publish(SloAlert("b", 0.0, 300.0, 250.0))
    assert bus.counters.dropped == {Lane.ROUTINE: 2, Lane.SLO: 0, Lane.INCIDENT: 0}
    # a routine event finding the bus full drops the oldest routine one, never an alert
    bus.publish(metrics("svc-9"))
    assert bus.counters.dropped[Lane.ROUTINE] == 3
    # six incidents: routine first, then alerts, then the bus grows rather than lose an incident
    for i in range(6):
        bus.publish(Incident("node_not_ready", f"node-{i}", 0.0))
    assert bus.counters.dropped == {Lane.ROUTINE: 5, Lane.SLO: 2, Lane.INCIDENT: 0}
    assert bus.queued() == 6
    bus.drain()
    assert [e.subject for e in seen if isinstance(e, Incident)] == [f"node-{i}" for i in range(6)]


def test_a_routine_event_on_a_bus_full_of_alerts_is_itself_dropped() -> None:
    bus, seen = recording_bus(BusLimits(routine=10, slo=10, total=2))
    bus.publish(SloAlert("a", 0.0, 300.0, 250.0))
    bus.publish(SloAlert("b", 0.0, 300.0, 250.0))
    bus.publish(metrics("web"))
    bus.drain()
    assert [type(e).__name__ for e in seen] == ["SloAlert", "SloAlert"]
    assert bus.counters.dropped[Lane.ROUTINE] == 1


def test_drain_delivers_at_most_max_events_and_keeps_the_rest_for_later() -> None:
    bus, seen = recording_bus()
    for i in range(5):
        bus.publish(metrics(f"svc-{i}"))
    first = bus.drain(max_events=2)
    assert (first.delivered, first.remaining) == (2, 3)
    bus.publish(Incident("node_not_ready", "node-0", 0.0))
    second = bus.drain(max_events=2)
    assert (second.delivered, second.remaining) == (2, 2)
    assert [type(e).__name__ for e in seen] == ["ServiceMetrics", "ServiceMetrics", "Incident", "ServiceMetrics"]


def test_handlers_receive_only_their_event_type_in_subscription_order() -> None:
    bus = Bus()
    calls: list[str] = []
    bus.subscribe(SloAlert, lambda e: calls.append(f"first:{e.service}"))
    bus.subscribe(Incident, lambda e: calls.append(f"incident:{e.subject}"))
    bus.subscribe(SloAlert, lambda e: calls.append(f"second:{e.service}"))
    bus.publish(SloAlert("web", 0.0, 300.0, 250.0))
    bus.publish(metrics("api"))
    report = bus.drain()
    assert calls == ["first:web", "second:web"]
    assert report.unhandled == 1  # the metric had no subscriber


def test_an_incident_raised_by_a_handler_overtakes_waiting_routine_work_in_the_same_drain() -> None:
    bus, seen = recording_bus()
    bus.subscribe(SloAlert, lambda e: bus.publish(Incident("slo_breach", e.service, e.time_s)))
    bus.publish(SloAlert("web", 0.0, 900.0, 250.0))
    bus.publish(metrics("api"))
    bus.drain()
    assert [type(e).__name__ for e in seen] == ["SloAlert", "Incident", "ServiceMetrics"]


def test_a_proposal_travels_in_the_lane_its_agent_chose() -> None:
    bus, seen = recording_bus()
    routine = ProposalPublished(Proposal("cost", Scale("web", 2), "cheaper"))
    urgent = ProposalPublished(Proposal("reliability", Scale("web", 6), "node lost", lane=Lane.INCIDENT))
    bus.publish(routine)
    bus.publish(urgent)
    bus.drain()
    assert seen == [urgent, routine]


@dataclass(frozen=True, slots=True)
class Quote:
    item: str


@dataclass(frozen=True, slots=True)
class Offer:
    seller: str
    price: float


def test_request_collects_every_responders_answer_synchronously_in_registration_order() -> None:
    bus = Bus()
    bus.respond(Quote, lambda q: Offer("north", 3.0))
    bus.respond(Quote, lambda q: None)  # declines
    bus.respond(Quote, lambda q: Offer("south", 2.0))
    offers = bus.request(Quote("cpu"), Offer)
    assert offers == (Offer("north", 3.0), Offer("south", 2.0))
    assert bus.queued() == 0  # request-reply does not go through the queues


def test_request_rejects_an_answer_of_the_wrong_type() -> None:
    bus = Bus()
    bus.respond(Quote, lambda q: "three euros")
    with pytest.raises(TypeError, match="expected Offer"):
        bus.request(Quote("cpu"), Offer)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BusLimits(total=0)
