"""An httpx transport over aiohttp: the adapters keep httpx's API, the wire work is aiohttp's.

httpx's own connection pool (httpcore) spends 1.5–4 ms of CPU per request once a few dozen
jobs are in flight, which made a 200-clip remote build cost ~25 ms of CPU per job; aiohttp
does the same requests for ~0.3–0.6 ms. It is an optional extra (``aivpbuild[aiohttp]``);
without it, with ``http_transport: httpx`` in a provider's settings, or when a proxy is set
in the environment (``HTTPS_PROXY`` …, which httpx honours), httpx's own transport is used.

Errors are mapped so that the retry rules stay safe: only failures that happen before the
request could reach the server become :class:`httpx.ConnectError`/:class:`httpx.ConnectTimeout`
(which the adapters may retry for a paid submit); everything after — a reset, a disconnect, a
short body, a read timeout — becomes a read-side error, which makes a submit "uncertain"
rather than resent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

#: aiohttp exception name -> httpx exception, most specific first.
_ERROR_MAP: tuple[tuple[str, type[httpx.TransportError]], ...] = (
    ("ConnectionTimeoutError", httpx.ConnectTimeout),
    ("ClientConnectorError", httpx.ConnectError),
    ("SocketTimeoutError", httpx.ReadTimeout),
    ("ServerTimeoutError", httpx.ReadTimeout),
    ("ServerDisconnectedError", httpx.RemoteProtocolError),
    ("ClientPayloadError", httpx.RemoteProtocolError),
    ("InvalidUrlClientError", httpx.UnsupportedProtocol),
    ("NonHttpUrlClientError", httpx.UnsupportedProtocol),
    ("ClientError", httpx.ReadError),
)


def available() -> bool:
    """Whether aiohttp is installed."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def make_transport(choice: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for a provider's ``http_transport`` setting (None: httpx's own)."""
    import urllib.request

    if choice == "httpx" or (choice == "auto" and (not available() or urllib.request.getproxies())):
        return None
    if not available():
        from aivpbuild.errors import ConfigError

        raise ConfigError(
            "http_transport: aiohttp is set but aiohttp is not installed",
            hint="pip install 'aivpbuild[aiohttp]', or set http_transport: auto",
        )
    return AiohttpTransport(limits)


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    import aiohttp

    try:
        yield
    except aiohttp.ClientError as exc:
        for name, mapped in _ERROR_MAP:
            kind = getattr(aiohttp, name, None)
            if kind is not None and isinstance(exc, kind):
                raise mapped(str(exc) or type(exc).__name__) from exc
        raise httpx.ReadError(str(exc)) from exc
    except TimeoutError as exc:
        raise httpx.ReadTimeout("timed out") from exc


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp as it arrives."""

    def __init__(self, response: Any) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool when read to the end, else closed


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one aiohttp session (created in the running event loop)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: Any = None

    def _open(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 5.0,
            ssl=httpx.create_ssl_context(),
        )
        # trust_env would read ~/.netrc on every request; proxies are left to httpx (above)
        return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _mapped_errors():
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
