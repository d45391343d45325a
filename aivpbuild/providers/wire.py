"""The HTTP engine under the remote adapters: one small interface, two implementations.

The adapters send every request through a :class:`Wire`: ``request`` (the body read in full)
or ``stream`` (the body as it arrives: downloads, fal's status stream). Both answer with the
part of httpx's ``Response`` the adapters use (``status_code``, ``headers``, ``json()``,
``text``, ``aiter_bytes``, ``aiter_lines``), so an ``httpx.Response`` is itself an answer.

* :class:`AiohttpWire` talks to aiohttp directly (the optional extra ``aivpbuild[aiohttp]``).
  It costs about a third of the CPU per request of httpx's own client, which matters when
  hundreds of clips are in flight (``bench/remote.py``).
* :class:`HttpxWire` wraps an ``httpx.AsyncClient``: used without aiohttp, with
  ``http_transport: httpx``, when a proxy variable is set (httpx honours ``HTTPS_PROXY`` …;
  aiohttp is kept from reading the environment), and when tests inject a client.

Errors are httpx's in both, and aiohttp's are mapped so that the retry rules stay safe: only
a failure before the request could reach the server becomes :class:`httpx.ConnectError` or
:class:`httpx.ConnectTimeout` (which may be retried even for a paid submit); everything after
— a reset, a disconnect, a short body, a read timeout — is a read-side error, which makes a
submit "uncertain" rather than resent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import httpx

from aivpbuild import __version__

USER_AGENT = f"aivpbuild/{__version__}"

#: How long an idle connection is kept for reuse (httpx's default).
KEEPALIVE_SECONDS = 5.0
#: A multipart file field: (file name, bytes, content type).
FileField = tuple[str, bytes, str]


class Answer(Protocol):
    """What a request answers with (an ``httpx.Response`` is one)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


class StreamAnswer(Answer, Protocol):
    """An answer whose body is read as it arrives."""

    @property
    def num_bytes_downloaded(self) -> int: ...
    def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]: ...
    def aiter_lines(self) -> AsyncIterator[str]: ...


class Wire(Protocol):
    """What the adapters send their requests through (redirects followed, body read in full)."""

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None, json: Any = None,
                      content: bytes | None = None, data: Mapping[str, str] | None = None,
                      files: Mapping[str, FileField] | None = None) -> Answer: ...

    def stream(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
               params: Mapping[str, str] | None = None,
               read_timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[StreamAnswer]: ...

    async def aclose(self) -> None: ...


def aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def make_wire(choice: str, *, timeout: float, jobs: int) -> Wire:
    """The engine for a provider's ``http_transport`` setting (``auto`` | ``aiohttp`` | ``httpx``).

    A connection is kept alive per job in flight: a new one per request would cost a TCP and a
    TLS handshake each time.
    """
    import urllib.request

    max_connections, keepalive = max(100, 2 * jobs), max(20, jobs + 4)
    if choice == "aiohttp" and not aiohttp_available():
        from aivpbuild.errors import ConfigError

        raise ConfigError(
            "http_transport: aiohttp is set but aiohttp is not installed",
            hint="pip install 'aivpbuild[aiohttp]', or set http_transport: auto",
        )
    if choice == "aiohttp" or (choice == "auto" and aiohttp_available() and not urllib.request.getproxies()):
        return AiohttpWire(timeout=timeout, max_connections=max_connections)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=keepalive,
                          keepalive_expiry=KEEPALIVE_SECONDS)
    client = httpx.AsyncClient(timeout=timeout, follow_redirects=True, limits=limits,
                               headers={"User-Agent": USER_AGENT})
    return HttpxWire(client)


# ---------------------------------------------------------------------------------- httpx
class HttpxWire:
    """A wire over an ``httpx.AsyncClient`` (its answers are ``httpx.Response`` objects)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None, json: Any = None,
                      content: bytes | None = None, data: Mapping[str, str] | None = None,
                      files: Mapping[str, FileField] | None = None) -> httpx.Response:
        return await self.client.request(method, url, headers=headers, params=params, json=json,
                                         content=content, data=data, files=files)

    def stream(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
               params: Mapping[str, str] | None = None,
               read_timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if read_timeout is not None:
            base = self.client.timeout
            timeout = httpx.Timeout(connect=base.connect, read=read_timeout, write=base.write, pool=base.pool)
        return self.client.stream(method, url, headers=headers, params=params, timeout=timeout)

    async def aclose(self) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------------------------- aiohttp
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


class _Answer:
    """A whole response from aiohttp."""

    def __init__(self, status: int, headers: Mapping[str, str], reason: str | None, body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.reason_phrase = reason or ""
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class _StreamAnswer(_Answer):
    """A response from aiohttp whose body is read as it arrives."""

    def __init__(self, response: Any) -> None:
        super().__init__(response.status, response.headers, response.reason, b"")
        self._response = response
        self._received = 0

    @property
    def num_bytes_downloaded(self) -> int:
        """Bytes as they came over the wire (compressed ones, when the body was encoded)."""
        raw = getattr(self._response.content, "total_raw_bytes", None)
        return raw if isinstance(raw, int) else self._received

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        content = self._response.content
        with _mapped_errors():
            async for chunk in (content.iter_chunked(chunk_size) if chunk_size else content.iter_any()):
                self._received += len(chunk)
                yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines without their ending (``\\n`` or ``\\r\\n``); no length limit."""
        pending = b""
        async for chunk in self.aiter_bytes():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", errors="replace")


class AiohttpWire:
    """One aiohttp session (created inside the running event loop on first use)."""

    def __init__(self, *, timeout: float, max_connections: int) -> None:
        self._timeout = timeout
        self._max_connections = max_connections
        self._session: Any = None
        self._timeouts: dict[float | None, Any] = {}

    def _open(self) -> Any:
        import aiohttp

        # Idle connections are dropped after 5 s, as httpx does: a paid submit sent on a
        # connection the server has meanwhile closed could not be told from one it accepted.
        connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS,
                                         ssl=httpx.create_ssl_context())
        # trust_env would read ~/.netrc on every request; proxies are left to httpx (above)
        return aiohttp.ClientSession(connector=connector, trust_env=False,
                                     headers={"User-Agent": USER_AGENT})

    def _client_timeout(self, read: float | None) -> Any:
        found = self._timeouts.get(read)
        if found is None:
            import aiohttp

            found = self._timeouts[read] = aiohttp.ClientTimeout(
                total=None, connect=self._timeout, sock_connect=self._timeout,
                sock_read=self._timeout if read is None else read)
        return found

    def _send(self, method: str, url: str, headers: Mapping[str, str] | None,
              params: Mapping[str, str] | None, read_timeout: float | None = None, **body: Any) -> Any:
        if self._session is None:
            self._session = self._open()
        return self._session.request(method, url, headers=headers, params=params,
                                     timeout=self._client_timeout(read_timeout), **body)

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None, json: Any = None,
                      content: bytes | None = None, data: Mapping[str, str] | None = None,
                      files: Mapping[str, FileField] | None = None) -> _Answer:
        body: dict[str, Any] = {}
        if json is not None:
            body["json"] = json
        elif files:
            body["data"] = _form(data or {}, files)
        elif content is not None or data is not None:
            body["data"] = content if content is not None else dict(data or {})
        with _mapped_errors():
            async with self._send(method, url, headers, params, **body) as response:
                return _Answer(response.status, response.headers, response.reason, await response.read())

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                     params: Mapping[str, str] | None = None,
                     read_timeout: float | None = None) -> AsyncIterator[_StreamAnswer]:
        with _mapped_errors():
            response = await self._send(method, url, headers, params, read_timeout)
        try:
            yield _StreamAnswer(response)
        finally:
            response.release()  # back to the pool when read to the end, else closed

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _form(fields: Mapping[str, str], files: Mapping[str, FileField]) -> Any:
    import aiohttp

    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, blob, content_type) in files.items():
        form.add_field(name, blob, filename=filename, content_type=content_type)
    return form
