"""Scripted HTTP for the adapter tests: an httpx.MockTransport whose replies are queued per
route, a sleep recorder (so retries are instant and their waits can be asserted), and a
runner for coroutines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


@dataclass
class Reply:
    """One scripted answer: a status with a JSON body or raw bytes, or a transport error."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    error: type[httpx.TransportError] | None = None
    stream: httpx.AsyncByteStream | None = None

    def build(self, request: httpx.Request) -> httpx.Response:
        if self.error is not None:
            raise self.error("scripted failure", request=request)
        if self.stream is not None:
            return httpx.Response(self.status, headers=self.headers, stream=self.stream)
        if self.raw is not None:
            return httpx.Response(self.status, headers=self.headers, content=self.raw)
        content = b"" if self.body is None else json.dumps(self.body).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        return httpx.Response(self.status, headers=headers, content=content)


Answer = Reply | Callable[[httpx.Request], httpx.Response]


class Script:
    """Routes ``(METHOD, host+path)`` to queued replies; the last reply of a route repeats."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, url: str, *replies: Answer) -> Script:
        key = (method, str(httpx.URL(url).copy_with(query=None)))
        self.routes.setdefault(key, []).extend(replies)
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, str(request.url.copy_with(query=None)))
        queue = self.routes.get(key)
        if not queue:
            return httpx.Response(599, json={"detail": f"unscripted {key}"})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer.build(request) if isinstance(answer, Reply) else answer(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def count(self, method: str, url: str) -> int:
        target = str(httpx.URL(url).copy_with(query=None))
        return sum(
            1
            for r in self.requests
            if r.method == method and str(r.url.copy_with(query=None)) == target
        )

    def sent(self, method: str, url: str) -> list[httpx.Request]:
        target = str(httpx.URL(url).copy_with(query=None))
        return [
            r
            for r in self.requests
            if r.method == method and str(r.url.copy_with(query=None)) == target
        ]


class Sleeps:
    """A stand-in for asyncio.sleep that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class BrokenStream(httpx.AsyncByteStream):
    """A body that sends ``data`` and then breaks like a reset connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset by peer")


def run(coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())
