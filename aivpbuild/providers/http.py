"""HTTP plumbing shared by the remote adapters: retries with backoff, streamed downloads.

Transport errors become :class:`ProviderError` at this boundary; secrets never enter a message
(no headers, no request objects in text).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from aivpbuild.crashpoints import crash_point
from aivpbuild.errors import ProviderError
from aivpbuild.providers.base import Provider

Sleep = Callable[[float], Awaitable[None]]
DOWNLOAD_ATTEMPTS = 4


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def backoff(attempt: int, *, base: float = 0.5, cap: float = 20.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


def detail(response: httpx.Response) -> str:
    """The error text a provider put in its body (JSON `detail`/`title`/`error`), shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("detail", "error", "title", "message"):
            if body.get(key):
                value = body[key]
                if isinstance(value, list):  # pydantic-style validation errors
                    return "; ".join(
                        f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
                        if isinstance(item, dict) else str(item) for item in value)
                return str(value) if not isinstance(value, dict) else str(value.get("message", value))
    return str(body)[:300]


async def download(client: httpx.AsyncClient, url: str, dest: Path, *, sleep: Sleep = asyncio.sleep,
                   headers: dict[str, str] | None = None, what: str = "output") -> int:
    """Stream ``url`` into ``dest``; a short or broken body is retried from the URL (never the
    job). Returns the byte count; raises ProviderError when the file cannot be had."""
    last = ""
    for attempt in range(DOWNLOAD_ATTEMPTS):
        try:
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code in (404, 410):
                    raise ProviderError(
                        f"the {what} is gone from the provider ({response.status_code}): outputs "
                        "expire, so aivpbuild downloads them as soon as a job completes",
                        hint="the job must be run again to get it back")
                if response.status_code >= 400:
                    last = f"HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        raise ProviderError(f"downloading the {what} failed: {last}")
                else:
                    expected = response.headers.get("content-length")
                    size = 0
                    with open(dest, "wb") as fh:
                        async for chunk in response.aiter_bytes(1 << 16):
                            fh.write(chunk)
                            size += len(chunk)
                            crash_point("mid-download")
                    if expected is None or int(expected) == size:
                        return size
                    last = f"truncated ({size} of {expected} bytes)"
        except (httpx.TransportError, httpx.StreamError) as exc:
            last = f"{type(exc).__name__}"
        await sleep(backoff(attempt))
    raise ProviderError(f"downloading the {what} failed after {DOWNLOAD_ATTEMPTS} tries: {last}",
                        hint="run again: the finished job is journaled and is downloaded, not resubmitted",
                        retryable=True)


def json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(f"{what}: the provider answered with something that is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderError(f"{what}: unexpected response shape")
    return body


class HttpProvider(Provider):
    """What the remote adapters share: their settings, one lazily created httpx client (tests
    inject a client or a sleep function), and tracking which log lines were already shown."""

    def __init__(self, *, settings: Any, client: httpx.AsyncClient | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.poll_interval = settings.poll_interval
        self.default_concurrency = settings.concurrency or type(self).default_concurrency  # type: ignore[misc]
        self._client = client
        self._sleep = sleep
        self._seen_logs: dict[str, int] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=True)
        return self._client

    def new_logs(self, request_id: str, lines: list[str]) -> tuple[str, ...]:
        """The log lines of a job not shown yet."""
        seen = self._seen_logs.get(request_id, 0)
        self._seen_logs[request_id] = len(lines)
        return tuple(lines[seen:])

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
