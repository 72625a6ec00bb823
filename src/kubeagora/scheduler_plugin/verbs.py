"""Where the extender's verbs run: parse, check, answer and encode, away from the HTTP server's loop.

``answer_request`` is the whole of one verb, a pure function of the cache and the body's bytes. Two
places run it, behind one small interface (``Verbs``):

- ``ProcessVerbs`` (what ``kubeagora scheduler-extender`` uses): a child process with its own replica
  of the watch cache, fed every watch event by the parent. Decoding a 4 MB body is one call into
  orjson that holds the interpreter lock for a hundred milliseconds and more; in a thread of the
  server's process that stalls ``/healthz`` as surely as running on the loop would. In a child
  process the server's interpreter only moves bytes.
- ``ThreadVerbs``: one worker thread over the caller's own cache, for tests and for embedding the
  app; the probes stay answered, with pauses as long as the longest decode.

Both answer one verb at a time (kube-scheduler calls one at a time per scheduling cycle) and drop
a request that waited longer than the scheduler does (``stale_after_s``) unanswered: one slow body
cannot make every later one late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from kubeagora.scheduler_plugin.bids import BidSettings
from kubeagora.scheduler_plugin.cache import ClusterCache, node_info
from kubeagora.scheduler_plugin.filtering import filter_pod
from kubeagora.scheduler_plugin.protocol import (
    ExtenderArgs,
    MalformedRequest,
    filter_result,
    host_priority_list,
    parse_extender_args,
)
from kubeagora.scheduler_plugin.scoring import prioritize_pod
from kubeagora.scheduler_plugin.workload import pod_demand

log = logging.getLogger("kubeagora.scheduler_extender")
VERBS = ("filter", "prioritize")
STALE_AFTER_S = 2.0
"""kube-scheduler's default extender ``httpTimeout``: an answer later than this is read by nobody."""


def answer_filter(cache: ClusterCache, args: ExtenderArgs) -> dict[str, Any]:
    offered = None
    if args.nodes is not None:
        offered = {n.name: n for n in map(node_info, args.nodes)}
    outcome = filter_pod(cache, pod_demand(args.pod), args.node_names, offered)
    return filter_result(args, outcome.passed, outcome.failed, outcome.unresolvable)


def answer_prioritize(cache: ClusterCache, args: ExtenderArgs, settings: BidSettings) -> list[dict[str, Any]]:
    annotations = (args.pod.get("metadata") or {}).get("annotations") or {}
    return host_priority_list(prioritize_pod(cache, pod_demand(args.pod), annotations, args.node_names, settings))


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int
    """The HTTP status: 200, 400 (malformed), 500 (a bug), 503 (stale)."""
    body: bytes
    """The JSON answer, or ``{"error": reason}``."""
    outcome: str
    """For the requests counter: ok, bad_request, error, stale."""


def _error(status: int, outcome: str, message: str) -> Verdict:
    return Verdict(status, orjson.dumps({"error": message}), outcome)


def answer_request(cache: ClusterCache, verb: str, body: bytes, settings: BidSettings, queued_at: float = 0.0,
                   stale_after_s: float = STALE_AFTER_S) -> Verdict:
    """One verb from its request body to its response body (``queued_at``: ``time.monotonic()`` when the
    request arrived; 0 never goes stale)."""
    waited_s = time.monotonic() - queued_at if queued_at else 0.0
    if waited_s > stale_after_s:
        return _error(503, "stale", f"{verb}: waited {waited_s:.1f} s for its turn, longer than the scheduler "
                                    f"waits ({stale_after_s:g} s)")
    try:
        args = parse_extender_args(body)
    except MalformedRequest as e:
        return _error(400, "bad_request", f"{verb}: {e}")
    try:
        answer = answer_filter(cache, args) if verb == "filter" else answer_prioritize(cache, args, settings)
        return Verdict(200, orjson.dumps(answer), "ok")
    except Exception as e:  # a bug must not take the scheduler's extender down
        log.exception("%s failed", verb)
        return _error(500, "error", f"{verb}: {type(e).__name__}: {e}")


class Verbs(Protocol):
    """Runs verbs for the HTTP server and takes the watch loops' updates of the cache they read."""

    async def answer(self, verb: str, body: bytes, queued_at: float) -> Verdict: ...

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None: ...

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class ThreadVerbs:
    """Verbs in one worker thread of this process, reading ``cache`` (which the caller keeps current)."""

    def __init__(self, cache: ClusterCache, settings: BidSettings | None = None,
                 stale_after_s: float = STALE_AFTER_S) -> None:
        self.cache, self.settings, self.stale_after_s = cache, settings or BidSettings(), stale_after_s
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extender-verbs")

    async def answer(self, verb: str, body: bytes, queued_at: float) -> Verdict:
        return await asyncio.get_running_loop().run_in_executor(
            self._worker, answer_request, self.cache, verb, body, self.settings, queued_at, self.stale_after_s)

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        pass  # the caller's cache is the one read

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        pass

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _exit_with_parent() -> None:
    """End this child process as soon as its parent is gone, whatever the main thread is blocked on.

    A parent killed (SIGKILL, the OOM killer) halfway through writing an update leaves the child waiting
    for the rest of that message in the updates queue; the child holds the queue's write end itself, so
    no end of file ever comes. The parent's process sentinel becomes ready when it dies, however it dies.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="extender-verbs-parent-watch", daemon=True).start()


def _serve_verbs(requests: multiprocessing.connection.Connection, updates: multiprocessing.Queue[Any],
                 settings: BidSettings, stale_after_s: float) -> None:
    """The child process: apply the updates waiting before each request, answer it, until the pipe closes
    or the parent is gone."""
    _exit_with_parent()
    cache = ClusterCache()

    def catch_up() -> None:
        while True:
            try:
                update = updates.get_nowait()
            except queue.Empty:
                return
            if update[0] == "apply":
                cache.apply(*update[1:])
            else:
                cache.replace(*update[1:])

    requests.send("ready")
    while True:
        waiting = requests.poll(0.2)
        catch_up()
        if not waiting:
            continue
        try:
            verb, queued_at = requests.recv()
            body = requests.recv_bytes()
        except (EOFError, OSError):
            return
        verdict = answer_request(cache, verb, body, settings, queued_at, stale_after_s)
        requests.send((verdict.status, verdict.outcome))
        requests.send_bytes(verdict.body)


class ProcessVerbs:
    """Verbs in a child process with its own replica of the cache: ``apply``/``replace`` forward each watch
    update to it (a queue whose feeder thread never blocks the caller's loop)."""

    def __init__(self, settings: BidSettings | None = None, stale_after_s: float = STALE_AFTER_S) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process running an event loop and threads
        self._requests, child_end = ctx.Pipe()
        self._updates: multiprocessing.Queue[Any] = ctx.Queue()
        self._process = ctx.Process(target=_serve_verbs, name="extender-verbs", daemon=True,
                                    args=(child_end, self._updates, settings or BidSettings(), stale_after_s))
        self._process.start()
        child_end.close()
        self._exchange = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extender-verbs-pipe")
        self._ready = self._exchange.submit(self._requests.recv)

    def _round_trip(self, verb: str, body: bytes, queued_at: float) -> Verdict:
        self._requests.send((verb, queued_at))
        self._requests.send_bytes(body)
        status, outcome = self._requests.recv()
        return Verdict(status, self._requests.recv_bytes(), outcome)

    async def answer(self, verb: str, body: bytes, queued_at: float) -> Verdict:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._exchange, self._round_trip, verb, body,
                                                                    queued_at)
        except (EOFError, OSError) as e:
            return _error(503, "error", f"{verb}: the verbs' worker process is gone ({type(e).__name__})")

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        self._updates.put(("apply", kind, event, obj))

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        self._updates.put(("replace", kind, list(items)))

    def alive(self) -> bool:
        return self._process.is_alive() and self._ready.done() and self._ready.exception() is None

    def exited(self) -> bool:
        """The child process has ended (it never does by itself: a crash, or the OOM killer)."""
        return self._process.exitcode is not None

    def close(self) -> None:
        self._requests.close()
        self._exchange.shutdown(wait=False, cancel_futures=True)
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        with contextlib.suppress(OSError, ValueError):
            self._updates.close()
