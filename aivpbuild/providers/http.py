"""HTTP plumbing shared by the remote adapters: retries with backoff, streamed downloads.

Transport errors become :class:`ProviderError` at this boundary. Messages name the step and
the provider, never a header, a request object or the client (so a key cannot leak into one).

Retry rules in one place (:func:`send`):

* a connection that was never made (refused, DNS, connect timeout, pool timeout) is retried
  for every method: the server cannot have seen the request;
* any other transport error (reset, read timeout, protocol error) is retried only for an
  idempotent request; for a paid submit it raises :class:`SubmitUncertain`, because the
  provider may have accepted — and will bill — the job;
* a response is retried when the adapter's ``retry_on`` says so, waiting ``Retry-After``
  when given (capped), else exponential backoff with full jitter.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aivpbuild.crashpoints import crash_point
from aivpbuild.errors import ProviderError, SubmitUncertain
from aivpbuild.providers.base import Provider
from aivpbuild.providers.wire import Answer, HttpxWire, Wire, make_wire
from aivpbuild.secrets import MASK, redact, remember

Sleep = Callable[[float], Awaitable[None]]
RetryOn = Callable[[Answer], bool]

log = logging.getLogger("aivpbuild.providers")

#: Transport errors raised before any byte of the request reached the server.
NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

UNCERTAIN_HINT = (
    "see `aivpbuild jobs`; check the provider's dashboard, then run again with "
    "--resubmit-uncertain to submit anew"
)


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries a request gets and how long to wait between them."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    #: The longest ``Retry-After`` honoured; a longer one is clipped to this.
    max_retry_after: float = 120.0
    #: Tries for one output download (each from the URL, never resubmitting the job).
    download_attempts: int = 4


DEFAULT_POLICY = RetryPolicy()


def retry_after(
    response: Answer, *, cap: float = DEFAULT_POLICY.max_retry_after
) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(cap, max(0.0, seconds))


def backoff(
    attempt: int, *, base: float = DEFAULT_POLICY.base, cap: float = DEFAULT_POLICY.cap
) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base x 2^attempt))."""
    return random.uniform(0, min(cap, base * 2**attempt))


def _wait(response: Answer | None, attempt: int, policy: RetryPolicy) -> float:
    if response is not None:
        asked = retry_after(response, cap=policy.max_retry_after)
        if asked is not None:
            return asked
    return backoff(attempt, base=policy.base, cap=policy.cap)


def field_errors(items: list[Any]) -> str:
    """Validation errors (fal/pydantic ``loc``+``msg``, Replicate ``field``+``description``)."""
    parts = []
    for item in items:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        loc = item.get("loc")
        where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
        where = where or str(item.get("field") or item.get("property") or "")
        text = str(
            item.get("msg")
            or item.get("description")
            or item.get("message")
            or item.get("type")
            or ""
        )
        parts.append(f"{where}: {text}" if where else text)
    return "; ".join(parts)


def detail(response: Answer) -> str:
    """The error text a provider put in its body, shortened: problem+json ``title: detail``,
    pydantic-style field lists, or ``error``/``message``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:300]
    text = body.get("detail")
    if isinstance(text, list):
        text = field_errors(text)
    elif isinstance(text, dict):
        text = text.get("message") or str(text)
    if isinstance(body.get("invalid_fields"), list) and body["invalid_fields"]:
        fields = field_errors(body["invalid_fields"])
        text = f"{text} ({fields})" if text else fields
    title = body.get("title")
    if title and text and str(title) not in str(text):
        text = f"{title}: {text}"
    text = text or title or body.get("error") or body.get("message")
    if isinstance(text, dict):
        text = text.get("message") or str(text)
    return str(text)[:500] if text else str(body)[:300]


def json_body(response: Answer, what: str) -> dict[str, Any]:
    """The response's JSON object, or a ProviderError naming the step."""
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(
            f"{what}: the provider answered with something that is not JSON "
            f"(HTTP {response.status_code})"
        ) from None
    if not isinstance(body, dict):
        raise ProviderError(f"{what}: unexpected response shape (a JSON object was expected)")
    return body


async def send(
    wire: Wire,
    method: str,
    url: str,
    *,
    what: str,
    provider: str,
    retry_on: RetryOn,
    sleep: Sleep = asyncio.sleep,
    policy: RetryPolicy = DEFAULT_POLICY,
    idempotent: bool = True,
    uncertain: str = "accepted (and will bill) the job",
    **kwargs: Any,
) -> Answer:
    """One API call with retries (rules in the module docstring). Returns the last response,
    whatever its status (the caller turns error statuses into messages). ``uncertain`` says
    what a non-idempotent request may have done when its connection broke after sending."""
    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        response: Answer | None = None
        try:
            response = await wire.request(method, url, **kwargs)
        except NOT_SENT as exc:
            reason = f"cannot reach {provider} ({type(exc).__name__})"
        except httpx.TransportError as exc:
            if not idempotent:
                raise SubmitUncertain(
                    f"{what}: the connection failed after the request was sent "
                    f"({type(exc).__name__}); {provider} may have {uncertain}",
                    hint=UNCERTAIN_HINT,
                ) from None
            reason = f"{type(exc).__name__} talking to {provider}"
        else:
            if last or not retry_on(response):
                return response
            reason = f"HTTP {response.status_code}"
        if last:
            raise ProviderError(
                f"{what}: {reason} (after {policy.attempts} tries)",
                hint="check the network and the provider's status page, then run again",
                retryable=True,
            )
        delay = _wait(response, attempt, policy)
        log.info(
            "%s: %s; try %d of %d in %.1f s", what, reason, attempt + 2, policy.attempts, delay
        )
        await sleep(delay)
    raise AssertionError("unreachable")


def _download_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


async def download(
    wire: Wire,
    url: str,
    dest: Path,
    *,
    sleep: Sleep = asyncio.sleep,
    policy: RetryPolicy = DEFAULT_POLICY,
    expected_size: int | None = None,
    headers: dict[str, str] | None = None,
    what: str = "output",
) -> int:
    """Stream ``url`` into ``dest`` in chunks (never the whole body in memory). A short body
    (fewer bytes than ``Content-Length`` or ``expected_size``), a reset or a 5xx is retried
    from the URL — never by resubmitting the job. Returns the byte count; raises
    ProviderError (and removes the partial file) when the output cannot be had."""
    last = ""
    for attempt in range(policy.download_attempts):
        response: Answer | None = None
        try:
            # identity: the byte count can then be checked against Content-Length
            async with wire.stream("GET", url, headers={"Accept-Encoding": "identity", **(headers or {})}) as body:
                response = body
                status = body.status_code
                if status in (404, 410):
                    dest.unlink(missing_ok=True)
                    raise ProviderError(
                        f"the {what} is gone from the provider (HTTP {status}): outputs expire, so "
                        "aivpbuild downloads them as soon as a job completes",
                        hint="the job must be run again to get it back",
                    )
                if status >= 400 and not _download_retryable(status):
                    dest.unlink(missing_ok=True)
                    raise ProviderError(f"downloading the {what} failed: HTTP {status}")
                if status >= 400:
                    last = f"HTTP {status}"
                else:
                    header = body.headers.get("content-length")
                    expected = int(header) if header and header.isdigit() else expected_size
                    size = 0
                    with open(dest, "wb") as fh:
                        async for chunk in body.aiter_bytes(1 << 16):
                            fh.write(chunk)
                            size += len(chunk)
                            crash_point("mid-download")
                    encoded = body.headers.get("content-encoding", "identity") != "identity"
                    # Content-Length counts the bytes on the wire: compressed ones if encoded.
                    received = body.num_bytes_downloaded if header and encoded else size
                    if expected is None or received == expected:
                        return size
                    last = f"truncated ({received} of {expected} bytes)"
        except (httpx.TransportError, httpx.StreamError) as exc:
            last = type(exc).__name__
        if attempt < policy.download_attempts - 1:
            delay = _wait(response if last.startswith("HTTP") else None, attempt, policy)
            log.info(
                "downloading the %s: %s; try %d of %d in %.1f s",
                what,
                last,
                attempt + 2,
                policy.download_attempts,
                delay,
            )
            await sleep(delay)
    dest.unlink(missing_ok=True)
    raise ProviderError(
        f"downloading the {what} failed after {policy.download_attempts} tries: {last}",
        hint="run again: the finished job is journaled and is downloaded again, not resubmitted",
        retryable=True,
    )


class HttpProvider(Provider):
    """What the remote adapters share: their settings, one lazily created HTTP wire (tests
    inject an httpx client, a sleep function and a retry policy), and which log lines were shown."""

    def __init__(
        self,
        *,
        settings: Any,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.settings = settings
        self.poll_interval = settings.poll_interval
        self.default_concurrency = settings.concurrency or type(self).default_concurrency  # type: ignore[misc]
        self._wire: Wire | None = HttpxWire(client) if client is not None else None
        self._owns_wire = client is None
        self._sleep = sleep
        self.policy = policy
        self._seen_logs: dict[str, int] = {}
        self._secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never the key, never the client's headers
        return f"<{type(self).__name__}>"

    def _keep_secret(self, secret: str) -> None:
        """Scrub ``secret`` from the text this adapter puts in errors (a provider may echo a
        rejected key back in its error body), and from whatever :func:`redact` sees."""
        remember(secret)
        self._secrets = (*self._secrets, secret)

    def scrub(self, text: str) -> str:
        """``text`` without this adapter's secrets (nor any other key aivpbuild knows)."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, MASK)
        return redact(text)

    @property
    def wire(self) -> Wire:
        if self._wire is None:
            self._wire = make_wire(self.settings.http_transport, timeout=self.settings.timeout,
                                   jobs=self.default_concurrency)
        return self._wire

    def new_logs(self, request_id: str, lines: list[str]) -> tuple[str, ...]:
        """The log lines of a job not shown yet (providers send the whole log each time)."""
        seen = self._seen_logs.get(request_id, 0)
        if len(lines) < seen:  # the log was reset (e.g. a retried run): show it afresh
            seen = 0
        self._seen_logs[request_id] = len(lines)
        return tuple(lines[seen:])

    async def fetch_to(
        self, url: str, dest: Path, *, what: str, expected_size: int | None = None
    ) -> None:
        """Stream an output (no auth header: output URLs are public CDN links)."""
        await download(
            self.wire,
            url,
            dest,
            sleep=self._sleep,
            policy=self.policy,
            expected_size=expected_size,
            what=what,
        )

    async def aclose(self) -> None:
        if self._wire is not None and self._owns_wire:
            await self._wire.aclose()
            self._wire = None
