"""The list+watch loops that keep the extender's cache current (thin: all logic is in ``cache``).

One loop per kind: list (paginated), hand the items to ``ClusterCache.replace``, watch from the
list's resourceVersion, hand each event to ``ClusterCache.apply``; list again when the watch ends
with 410 Gone, and after any other error (with a pause). OrchestrationIntents may not exist yet —
the CRD is installed after the extender, or never — so a 404 there means "no intents" and the loop
retries every ``missing_retry_s``. ``Replicated`` hands every update to the server's cache and to the
verbs' replica of it (``verbs.ProcessVerbs``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from kubeagora.kubeapi.client import Api, ApiError, WatchExpired
from kubeagora.scheduler_plugin.cache import DEPLOYMENTS, INTENTS, NODES, PODS, ClusterCache
from kubeagora.scheduler_plugin.verbs import Verbs

log = logging.getLogger("kubeagora.scheduler_extender")


class CacheUpdates(Protocol):
    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None: ...

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class Replicated:
    """Updates applied to ``local`` and forwarded to the cache ``verbs`` reads."""

    local: ClusterCache
    verbs: Verbs

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        self.local.apply(kind, event, obj)
        self.verbs.apply(kind, event, obj)

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        items = list(items)
        self.local.replace(kind, items)
        self.verbs.replace(kind, items)


@dataclass(frozen=True, slots=True)
class Source:
    kind: str
    path: str
    params: Mapping[str, str]


SOURCES = (
    Source(NODES, "/api/v1/nodes", {}),
    # bound pods that still hold their node's resources; one that finishes leaves the selection (DELETED)
    Source(PODS, "/api/v1/pods", {"fieldSelector": "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"}),
    Source(DEPLOYMENTS, "/apis/apps/v1/deployments", {}),
    Source(INTENTS, "/apis/kubeagora.io/v1alpha1/orchestrationintents", {}),
)


async def follow(api: Api, cache: CacheUpdates, source: Source, missing_retry_s: float = 10.0,
                 error_pause_s: float = 2.0, watch_timeout_s: int = 300) -> None:
    """Keep ``source``'s kind in ``cache`` current, forever (cancel the task to stop)."""
    while True:
        try:
            items, version = await api.list_all(source.path, source.params)
            cache.replace(source.kind, items)
            while True:
                async for event, obj in api.watch(source.path, source.params, version, watch_timeout_s):
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    cache.apply(source.kind, event, obj)
        except WatchExpired:
            continue
        except ApiError as e:
            if e.status == 404:
                cache.replace(source.kind, [])
                await asyncio.sleep(missing_retry_s)
                continue
            log.warning("watch %s: %s", source.kind, e)
        except (TimeoutError, OSError, ValueError, aiohttp.ClientError) as e:
            log.warning("watch %s: %s: %s", source.kind, type(e).__name__, e)
        await asyncio.sleep(error_pause_s)


def start(api: Api, cache: CacheUpdates, sources: tuple[Source, ...] = SOURCES) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(follow(api, cache, s), name=f"watch-{s.kind}") for s in sources]
