"""An in-process publish-subscribe bus: typed events, priority lanes, backpressure, coalescing.

Agents talk through the bus instead of calling each other, so an agent can be added, removed or
replayed without the others knowing. Everything is deterministic and single-threaded: publishing
only queues, and the MAS controller calls `drain` once per tick, which delivers in this order:

1. lane: `Lane.INCIDENT` before `Lane.SLO` before `Lane.ROUTINE` — an SLO alert published after a
   thousand routine metric updates is delivered first;
2. within a lane, first in, first out (publication order).

Events are frozen dataclasses; a handler subscribes to an event type and receives instances of
that type and of its subclasses, handlers in the order they subscribed. An event says its own lane
and coalescing key through optional attributes (`lane`, `coalescing_key`; see `events.py`), which
`publish` may override.

Coalescing: a queued event with the same (type, coalescing key) is replaced by the newer one, which
keeps the older one's place in the queue — a metric that updates every second is still delivered
once per drain, with its newest value, and is never starved by its own updates.

Backpressure: the queue holds at most `BusLimits.total` events, and each lane at most its own
bound. When a lane is full its oldest event is dropped; when the whole bus is full the oldest
event of the lowest lane not above the newcomer's is dropped (routine first, then SLO). A routine
event that finds only higher-priority work queued is itself dropped. An incident is never dropped:
its lane has no bound and it is admitted even over the total. Every drop is counted per lane.

Request-reply (`respond` / `request`) is synchronous and bypasses the queues: it is the announce →
bid step of Contract Net (Smith 1980), where the manager needs every contractor's answer before it
awards, within the same tick.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubeagora.agents.base import Lane

EventT = TypeVar("EventT")
RequestT = TypeVar("RequestT")
ReplyT = TypeVar("ReplyT")

Handler = Callable[[Any], None]
Responder = Callable[[Any], Any]

LANES_BY_PRIORITY: tuple[Lane, ...] = tuple(sorted(Lane, reverse=True))
"""Delivery order: INCIDENT, SLO, ROUTINE."""


@dataclass(frozen=True, slots=True)
class BusLimits:
    """How much the bus queues before it sheds load."""

    routine: int = 4096
    """Routine events queued at most (metric updates, price posts, proposals of routine work)."""
    slo: int = 1024
    """SLO alerts queued at most."""
    total: int = 4096
    """Events queued at most over all lanes; incidents are admitted even beyond it."""

    def __post_init__(self) -> None:
        if min(self.routine, self.slo, self.total) < 1:
            raise ValueError(f"bus limits must be at least 1, got {self}")

    def lane_bound(self, lane: Lane) -> int | None:
        return {Lane.ROUTINE: self.routine, Lane.SLO: self.slo, Lane.INCIDENT: None}[lane]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A queued event with where it goes and what it may be merged with."""

    sequence: int
    """Publication number (the first published event is 0); orders delivery within a lane."""
    lane: Lane
    coalescing_key: Hashable | None
    event: Any


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What one `drain` did."""

    delivered: int
    """Events taken off the queues (with or without a subscriber)."""
    delivered_by_lane: dict[Lane, int]
    unhandled: int
    """Delivered events that no handler subscribed to."""
    remaining: int
    """Events still queued (delivered by a later drain)."""


@dataclass(slots=True)
class BusCounters:
    """Monotone counters (like Prometheus counters) of what the bus did, per lane."""

    published: dict[Lane, int] = field(default_factory=lambda: dict.fromkeys(Lane, 0))
    delivered: dict[Lane, int] = field(default_factory=lambda: dict.fromkeys(Lane, 0))
    coalesced: dict[Lane, int] = field(default_factory=lambda: dict.fromkeys(Lane, 0))
    """Events merged into a queued event with the same key (superseded, not lost)."""
    dropped: dict[Lane, int] = field(default_factory=lambda: dict.fromkeys(Lane, 0))
    """Events lost to backpressure; always 0 for `Lane.INCIDENT`."""


class _LaneQueue:
    """One lane: FIFO by publication order, with an index from coalescing key to queued slot."""

    __slots__ = ("by_key", "slots")

    def __init__(self) -> None:
        self.slots: OrderedDict[int, Envelope] = OrderedDict()
        self.by_key: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self.slots)

    def push(self, envelope: Envelope) -> bool:
        """Queue it; True when it replaced a queued event with the same key (coalesced)."""
        key = envelope.coalescing_key
        if key is not None and key in self.by_key:
            slot = self.by_key[key]
            self.slots[slot] = envelope  # assigning an existing key keeps its place in the order
            return True
        self.slots[envelope.sequence] = envelope
        if key is not None:
            self.by_key[key] = envelope.sequence
        return False

    def pop_oldest(self) -> Envelope:
        _, envelope = self.slots.popitem(last=False)
        if envelope.coalescing_key is not None:
            del self.by_key[envelope.coalescing_key]
        return envelope


class Bus:
    """The bus. Publishing queues; `drain` delivers; `request` asks every responder at once."""

    def __init__(self, limits: BusLimits | None = None) -> None:
        self.limits = limits or BusLimits()
        self.counters = BusCounters()
        self._lanes: dict[Lane, _LaneQueue] = {lane: _LaneQueue() for lane in Lane}
        self._handlers: list[tuple[type, Handler]] = []
        self._responders: list[tuple[type, Responder]] = []
        self._next_sequence = 0

    # ------------------------------------------------------------------ publish-subscribe
    def subscribe(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        """Call `handler` with every delivered event that is an instance of `event_type`."""
        self._handlers.append((event_type, handler))

    def publish(self, event: object, *, lane: Lane | None = None,
                coalescing_key: Hashable | None = None) -> None:
        """Queue an event. Lane and key default to the event's own `lane` and `coalescing_key`."""
        chosen_lane = Lane(lane if lane is not None else getattr(event, "lane", Lane.ROUTINE))
        key = coalescing_key if coalescing_key is not None else getattr(event, "coalescing_key", None)
        scoped_key = None if key is None else (type(event), key)
        envelope = Envelope(self._next_sequence, chosen_lane, scoped_key, event)
        self._next_sequence += 1
        self.counters.published[chosen_lane] += 1
        queue = self._lanes[chosen_lane]
        if queue.push(envelope):
            self.counters.coalesced[chosen_lane] += 1
            return
        bound = self.limits.lane_bound(chosen_lane)
        if bound is not None and len(queue) > bound:
            queue.pop_oldest()
            self.counters.dropped[chosen_lane] += 1
        if self.queued() > self.limits.total:
            self._shed_for(chosen_lane)

    def _shed_for(self, lane: Lane) -> None:
        """The bus is over its total: drop the oldest event of the lowest lane not above `lane`."""
        for victim_lane in sorted(Lane):
            if victim_lane > lane or victim_lane == Lane.INCIDENT:
                return  # only higher-priority work or incidents queued: an incident is admitted anyway
            victims = self._lanes[victim_lane]
            if len(victims) == 0:
                continue
            victims.pop_oldest()  # when the newcomer is alone in its lane, it is the one dropped
            self.counters.dropped[victim_lane] += 1
            return

    def queued(self, lane: Lane | None = None) -> int:
        """Events waiting for delivery, in one lane or in all."""
        if lane is not None:
            return len(self._lanes[lane])
        return sum(len(q) for q in self._lanes.values())

    def drain(self, max_events: int | None = None) -> DrainReport:
        """Deliver up to `max_events` queued events (all when None), highest lane first.

        Events that handlers publish during the drain are queued as usual and delivered in this
        same drain if the budget allows, in priority order: an incident raised by a handler goes
        before the routine events still waiting.
        """
        delivered_by_lane = dict.fromkeys(Lane, 0)
        delivered = unhandled = 0
        while max_events is None or delivered < max_events:
            envelope = self._pop_next()
            if envelope is None:
                break
            delivered += 1
            delivered_by_lane[envelope.lane] += 1
            self.counters.delivered[envelope.lane] += 1
            handlers = [h for event_type, h in self._handlers if isinstance(envelope.event, event_type)]
            if not handlers:
                unhandled += 1
            for handler in handlers:
                handler(envelope.event)
        return DrainReport(delivered, delivered_by_lane, unhandled, self.queued())

    def _pop_next(self) -> Envelope | None:
        for lane in LANES_BY_PRIORITY:
            queue = self._lanes[lane]
            if len(queue):
                return queue.pop_oldest()
        return None

    # ------------------------------------------------------------------ request-reply
    def respond(self, request_type: type[RequestT], responder: Callable[[RequestT], ReplyT | None]) -> None:
        """Answer every `request_type` request with `responder(request)`; None means "no answer"."""
        self._responders.append((request_type, responder))

    def request(self, request: object, reply_type: type[ReplyT]) -> tuple[ReplyT, ...]:
        """Ask every responder now, synchronously; the answers in the order the responders registered.

        A responder that answers with something other than a `reply_type` (or None) is a bug in that
        responder, and raises TypeError rather than handing the caller a wrong answer.
        """
        replies: list[ReplyT] = []
        for request_type, responder in self._responders:
            if not isinstance(request, request_type):
                continue
            reply = responder(request)
            if reply is None:
                continue
            if not isinstance(reply, reply_type):
                raise TypeError(f"responder {responder!r} answered {type(request).__name__} with "
                                f"{type(reply).__name__}, expected {reply_type.__name__}")
            replies.append(reply)
        return tuple(replies)
