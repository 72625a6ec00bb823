"""A small asyncio client of the Kubernetes REST API (aiohttp; JSON by orjson).

Enough for a kubelet, an operator's adapter and a scheduler extender: create, merge-patch
(objects and their ``status``), delete, paginated list and watch. Writes do not parse the response
body unless they fail, which keeps a thousand nodes' heartbeats cheap. One connection pool;
``max_in_flight`` bounds concurrent writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from kubeagora.kubeapi.kubeconfig import Endpoint

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"


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
    def __init__(self, endpoint: Endpoint, max_in_flight: int = 32, user_agent: str = "kubeagora") -> None:
        self.endpoint = endpoint
        headers = {"Accept": JSON, "User-Agent": user_agent}
        if endpoint.token:
            headers["Authorization"] = f"Bearer {endpoint.token}"
        connector = aiohttp.TCPConnector(ssl=endpoint.ssl_context or False, limit=max_in_flight + 24)
        self.session = aiohttp.ClientSession(endpoint.server, connector=connector, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        self.writes = asyncio.Semaphore(max_in_flight)
        self.write_timeout = aiohttp.ClientTimeout(total=30)

    async def close(self) -> None:
        await self.session.close()

    async def _write(self, method: str, path: str, body: Mapping[str, Any] | list[Any] | None, content_type: str,
                     params: Mapping[str, str] | None = None, want: bool = False,
                     ok: tuple[int, ...] = (), bounded: bool = True) -> tuple[int, Any]:
        if bounded:
            async with self.writes:
                return await self._write(method, path, body, content_type, params, want, ok, bounded=False)
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(
            method, path, data=data, params=params, headers={"Content-Type": content_type},
            timeout=self.write_timeout,
        ) as resp:
            raw = await resp.read()
            if resp.status >= 300 and resp.status not in ok:
                raise ApiError(method, path, resp.status, raw)
            return resp.status, (orjson.loads(raw) if want and resp.status < 300 else None)

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
        async with self.session.get(path, params=params, timeout=self.write_timeout) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise ApiError("GET", path, resp.status, raw)
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
        async with self.session.get(path, params=q, timeout=aiohttp.ClientTimeout(total=timeout_s + 30)) as resp:
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
