"""Leader election over a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

With two operator replicas, only the holder of the Lease ``kubeagora-operator`` (in the operator's
namespace) runs the control loop; the other watches (its cache stays warm) and serves the admission
webhook, and takes over when the holder stops renewing.

- Every write carries the resourceVersion it was read at, so two candidates racing for an expired
  Lease cannot both win: the second write is refused with 409 Conflict.
- Expiry is judged on the candidate's own clock: a Lease is expired when its record has not changed
  for ``lease_duration_s`` since this process last saw it change (the holder's clock is never read).
- The holder acts only while its last successful renewal is younger than ``renew_deadline_s``, which
  is shorter than ``lease_duration_s``: it stops acting before anyone else may take over.
- A holder that loses the Lease never resumes its old rollouts: the loop starts a new run, and the
  new holder finishes (rolls back or drops) what the old one left, from the signed AgentActions.

Why not kopf's peering: it pauses operators of lower priority while a higher one is alive, with no
fencing by resourceVersion and no bound on how long two may act at once; it is not leader election.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("kubeagora.operator")

LEASE_NAME = "kubeagora-operator"


class LeaseApi(Protocol):
    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any: ...

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]: ...

    async def replace(self, path: str, body: Mapping[str, Any], want: bool = False) -> tuple[int, Any]: ...


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    namespace: str
    identity: str
    """This replica's name (its pod name, or host and process id)."""
    name: str = LEASE_NAME
    lease_duration_s: float = 15.0
    """A candidate takes over a Lease unchanged for this long (client-go's default)."""
    renew_deadline_s: float = 10.0
    """The holder stops acting when it could not renew for this long (client-go's default)."""
    retry_period_s: float = 2.0
    """How often the holder renews and a candidate tries (client-go's default)."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("leader election needs 0 < retry period < renew deadline < lease duration")


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return base if name is None else f"{base}/{name}"


def _micro_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    api: LeaseApi
    settings: LeaseSettings
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    renewed_at: float | None = None
    """Monotonic time of this replica's last successful acquire or renewal (None: not the holder)."""
    observed: tuple[str, str] | None = None
    """(holder, renewTime) of the Lease as last read, and ``observed_at`` when it last changed."""
    observed_at: float = 0.0

    @property
    def is_leader(self) -> bool:
        """Whether this replica may act now."""
        return self.renewed_at is not None and self.monotonic() - self.renewed_at < self.settings.renew_deadline_s

    def leading(self) -> bool:
        return self.is_leader

    def _spec(self, transitions: int, acquired: str | None = None) -> dict[str, Any]:
        now = _micro_time(self.wall())
        return {"holderIdentity": self.settings.identity, "leaseDurationSeconds": int(self.settings.lease_duration_s),
                "acquireTime": acquired or now, "renewTime": now, "leaseTransitions": transitions}

    async def try_acquire_or_renew(self) -> bool:
        """One round: create the Lease, renew it, or take it over once expired. Returns ``is_leader``."""
        from kubeagora.kubeapi.client import ApiError

        s = self.settings
        try:
            lease = await self.api.get(lease_path(s.namespace, s.name))
        except ApiError as e:
            if e.status != 404:
                log.warning("cannot read Lease %s/%s: %s", s.namespace, s.name, e)
                return self.is_leader
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": s.name, "namespace": s.namespace}, "spec": self._spec(0)}
            try:
                await self.api.create(lease_path(s.namespace), body)
            except ApiError as conflict:
                log.info("another replica created Lease %s first (%s)", s.name, conflict)
                return self.is_leader
            return self._won()
        spec = lease.get("spec") or {}
        holder, renewed = str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or "")
        now = self.monotonic()
        if self.observed != (holder, renewed):
            self.observed, self.observed_at = (holder, renewed), now
        mine = holder == s.identity
        expired = not holder or now - self.observed_at > float(spec.get("leaseDurationSeconds") or
                                                                s.lease_duration_s)
        if not mine and not expired:
            self.renewed_at = None
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        acquired = spec.get("acquireTime") if mine else None
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace,
                             "resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
                "spec": self._spec(transitions, acquired)}
        try:
            await self.api.replace(lease_path(s.namespace, s.name), body)
        except ApiError as e:
            log.info("Lease %s not %s: %s", s.name, "renewed" if mine else "taken over", e)
            return self.is_leader
        if not mine:
            log.info("took over Lease %s/%s from %s", s.namespace, s.name, holder or "nobody")
        return self._won()

    def _won(self) -> bool:
        self.renewed_at = self.monotonic()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire and renew every ``retry_period_s`` until ``stop``; then let the Lease go."""
        while not stop.is_set():
            try:
                await self.try_acquire_or_renew()
            except Exception:  # the API server unreachable, say: not the leader until it answers again
                log.exception("leader election round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retry_period_s)
        await self.release()

    async def release(self) -> None:
        """On a clean stop: mark the Lease free (the other replica takes over at its next round)."""
        from kubeagora.kubeapi.client import ApiError

        if self.renewed_at is None:
            return
        self.renewed_at = None
        s = self.settings
        try:
            lease = await self.api.get(lease_path(s.namespace, s.name))
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != s.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time(self.wall()))
            await self.api.replace(lease_path(s.namespace, s.name), {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace,
                             "resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
                "spec": spec})
        except ApiError as e:
            log.info("could not release Lease %s: %s", s.name, e)
