"""A small asyncio client of the Kubernetes REST API (aiohttp; JSON by orjson).

Enough for a kubelet, an operator's adapter and a scheduler extender: create, merge-patch
(objects and their ``status``), delete, paginated list and watch. Writes do not parse the response
body unless they fail, which keeps a thousand nodes' heartbeats cheap. One connection pool;
``max_in_flight`` bounds concurrent writes. Credentials come from the official loaders
(``kubeconfig``); the header is asked of them per request, so rotated and exec-plugin tokens are
followed. A 429 or a 5xx (API Priority and Fairness throttling, an API server restarting) is retried
with exponential backoff and jitter, honouring ``Retry-After``, up to ``RETRIES`` times; a status
the caller lists in ``ok`` is an answer, never retried. The operator, the extender and the mock
kubelet all use this transport; kubernetes_asyncio's generated ApiClient has not been measured
against it here, so none of them has been moved onto it yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from kubeagora.kubeapi.kubeconfig import Endpoint

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"
RETRIES = 4
BACKOFF_S = 0.25
"""The first retry's delay; each next one doubles (with ±50 % jitter)."""
MAX_BACKOFF_S = 8.0
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def retry_delay_s(attempt: int, retry_after: str | None, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (0-based): the server's ``Retry-After`` when it gives
    seconds, else exponential backoff with jitter; at most ``MAX_BACKOFF_S`` either way."""
    if retry_after is not None:
        with contextlib.suppress(ValueError):
            return min(max(float(retry_after), 0.0), MAX_BACKOFF_S)
    jitter = float((rng or random).uniform(0.5, 1.5))
    return min(BACKOFF_S * 2.0**attempt * jitter, MAX_BACKOFF_S)


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        message = body[:300].decode(errors="replace")
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            message = str(orjson.loads(body).get("message") or message)
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410 / an ERROR event with code 410): list again."""


class Api:
    def __init__(self, endpoint: Endpoint, max_in_flight: int = 32, user_agent: str = "kubeagora",
                 retries: int = RETRIES) -> None:
        self.endpoint = endpoint
        self.retries = retries
        headers = {"Accept": JSON, "User-Agent": user_agent}
        connector = aiohttp.TCPConnector(ssl=endpoint.ssl_context or False, limit=max_in_flight + 24)
        self.session = aiohttp.ClientSession(endpoint.server, connector=connector, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        self.writes = asyncio.Semaphore(max_in_flight)
        self.write_timeout = aiohttp.ClientTimeout(total=30)

    async def close(self) -> None:
        await self.session.close()

    async def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Content-Type": content_type} if content_type else {}
        authorization = await self.endpoint.authorization()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    async def _request(self, method: str, path: str, ok: tuple[int, ...], *, data: bytes | None = None,
                       params: Mapping[str, str] | None = None, content_type: str | None = None,
                       ) -> tuple[int, bytes]:
        """One request, retried on 429 and 5xx (see the module's doc); (status, body)."""
        attempt = 0
        while True:
            async with self.session.request(method, path, data=data, params=params,
                                            headers=await self._headers(content_type),
                                            timeout=self.write_timeout) as resp:
                raw = await resp.read()
                if resp.status in ok or resp.status not in RETRYABLE or attempt >= self.retries:
                    return resp.status, raw
                delay = retry_delay_s(attempt, resp.headers.get("Retry-After"))
            attempt += 1
            await asyncio.sleep(delay)

    async def _write(self, method: str, path: str, body: Mapping[str, Any] | list[Any] | None, content_type: str,
                     params: Mapping[str, str] | None = None, want: bool = False,
                     ok: tuple[int, ...] = (), bounded: bool = True) -> tuple[int, Any]:
        if bounded:
            async with self.writes:
                return await self._write(method, path, body, content_type, params, want, ok, bounded=False)
        data = orjson.dumps(body) if body is not None else None
        status, raw = await self._request(method, path, ok, data=data, params=params, content_type=content_type)
        if status >= 300 and status not in ok:
            raise ApiError(method, path, status, raw)
        return status, (orjson.loads(raw) if want and status < 300 else None)

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        return await self._write("POST", path, body, JSON, want=want, ok=ok)

    async def merge_patch(self, path: str, body: Mapping[str, Any], ok: tuple[int, ...] = (),
                          bounded: bool = True) -> int:
        """``bounded=False``: the caller holds a slot of ``writes`` already."""
        status, _ = await self._write("PATCH", path, body, MERGE_PATCH, ok=ok, bounded=bounded)
        return status

    async def replace(self, path: str, body: Mapping[str, Any], want: bool = False) -> tuple[int, Any]:
        """PUT the whole object; with ``metadata.resourceVersion`` set, a 409 says someone wrote it first."""
        return await self._write("PUT", path, body, JSON, want=want)

    async def json_patch(self, path: str, ops: list[dict[str, Any]], ok: tuple[int, ...] = ()) -> int:
        """An RFC 6902 patch; a failed ``test`` op is refused (422) and changes nothing."""
        status, _ = await self._write("PATCH", path, ops, JSON_PATCH, ok=ok)
        return status

    async def delete(self, path: str, body: Mapping[str, Any] | None = None, ok: tuple[int, ...] = (404, 409)) -> int:
        status, _ = await self._write("DELETE", path, body, JSON, ok=ok)
        return status

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        status, raw = await self._request("GET", path, (), params=params)
        if status != 200:
            raise ApiError("GET", path, status, raw)
        return orjson.loads(raw)

    async def list_all(self, path: str, params: Mapping[str, str], page: int = 500) -> tuple[list[Any], str]:
        """Every item (paginated), and the list's resourceVersion to watch from."""
        items: list[Any] = []
        cont = ""
        while True:
            q = {**params, "limit": str(page)}
            if cont:
                q["continue"] = cont
            body = await self.get(path, q)
            items.extend(body.get("items") or ())
            meta = body.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion", ""))

    async def watch(self, path: str, params: Mapping[str, str], resource_version: str,
                    timeout_s: int = 300) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events until the server ends the watch; raises WatchExpired on 410."""
        q = {**params, "watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
             "timeoutSeconds": str(timeout_s)}
        async with self.session.get(path, params=q, headers=await self._headers(),
                                    timeout=aiohttp.ClientTimeout(total=timeout_s + 30)) as resp:
            if resp.status == 410:
                raise WatchExpired(path)
            if resp.status != 200:
                raise ApiError("GET", path, resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                if b"\n" not in buf:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    kind, obj = event.get("type", ""), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise WatchExpired(path)
                        raise ApiError("WATCH", path, int(obj.get("code") or 500), line)
                    yield kind, obj
