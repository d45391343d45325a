"""The HTTP core the fake providers share: a threaded server on 127.0.0.1, routing by name,
fault injection, a request log and a clean shutdown.

A fake subclasses :class:`FakeServer` and implements :meth:`FakeServer.route`, which names the
route a request hits ("submit", "status", "download", ...) and returns its handler. Faults are
looked up by that name (or ``"any"``) before the handler runs::

    fake.inject("status", status=429, retry_after=1, times=2)  # two throttled polls
    fake.inject("submit", reset=True, after=True)   # accept the job, then drop the connection
    fake.inject("any", delay=5)                     # hang past the client's timeout
    fake.inject("download", truncate=True)          # full Content-Length, half the bytes

What a ``status`` fault answers (body, headers) is protocol specific: each fake builds it in
:meth:`FakeServer.fault_response` unless the fault gives ``body``/``headers`` itself.
Faults with ``completed_error`` or ``output`` are *job* faults: they are taken by the next
accepted job (see :meth:`FakeServer.take_job_fault`), not by a request.

Stopping closes the listening socket and every open connection and joins every handler
thread (a hanging ``delay`` is cut short), so tests leak neither threads nor sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

#: Bytes written per chunk when streaming a body.
CHUNK = 64 * 1024
#: How long an idle keep-alive connection is kept before the server closes it.
IDLE_TIMEOUT = 30.0


class BadRequestBody(ValueError):
    """The request body is not the JSON (or multipart form) a route expects."""


@dataclass
class Fault:
    """One injected misbehaviour on requests whose route is ``route`` (or any, for ``"any"``).

    ``times``: how many requests it hits (``None``: until :meth:`FakeServer.clear_faults`).
    ``when``: an extra predicate on the request. ``delay``: seconds to wait first (a hang,
    cut short when the server stops). ``reset``: close the connection without a response.
    ``status`` (+ ``headers``/``body``): answer that instead of the real response, in the
    protocol's error shape when no body is given; ``retry_after`` adds ``Retry-After``;
    ``ingress``/``error_type``/``timeout_type`` choose the fal 5xx flavour. ``truncate``:
    announce the full Content-Length, send only part (``True``: half; a float: that fraction)
    and close. ``after``: run the real handler first (the job is accepted and billed), then
    misbehave. Job faults: ``completed_error`` (+ ``error``) makes the next accepted job fail,
    ``output`` replaces its video bytes; their ``when`` sees the submitting request.
    """

    route: str
    times: int | None = 1
    when: Callable[[Request], bool] | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    retry_after: float | None = None
    ingress: bool | None = None
    error_type: str | None = None
    timeout_type: str | None = None
    reset: bool = False
    delay: float = 0.0
    truncate: bool | float = False
    after: bool = False
    completed_error: str | None = None
    error: str | None = None
    output: bytes | None = None
    hits: int = 0

    @property
    def is_job_fault(self) -> bool:
        return self.completed_error is not None or self.output is not None


@dataclass
class Request:
    """A parsed request: ``path`` without the query, ``headers`` with lower-case names."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str = "") -> str:
        return (self.query.get(name) or [default])[0]

    def json(self) -> Any:
        """The body as JSON (``None`` when empty); :class:`BadRequestBody` when it is not."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadRequestBody(f"invalid JSON body: {exc}") from exc

    def form(self) -> dict[str, Message]:
        """The parts of a ``multipart/form-data`` body by field name."""
        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise BadRequestBody(f"expected multipart/form-data, got {content_type or 'nothing'}")
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        if not message.is_multipart():
            raise BadRequestBody("the multipart body has no parts")
        parts: dict[str, Message] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                parts[name] = part
        return parts


@dataclass
class Response:
    """What a handler answers: a JSON ``body``, ``raw`` bytes sent as they are, or a ``stream``
    of chunks sent with chunked transfer encoding as they are produced (server-sent events)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    on_sent: Callable[[], None] | None = None  # called once the whole body was written
    stream: Iterator[bytes] | None = None


@dataclass
class Call:
    """One request the fake received, with the route it matched and the status it got."""

    method: str
    path: str
    route: str
    time: float
    status: int | None = None  # None: reset, or the client went away


Handler = Callable[[Request], Response]


def retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def html_error_page(status: int, reason: str) -> Response:
    """What a load balancer in front of an API answers: HTML, not the API's JSON."""
    text = f"{status} {reason}"
    page = (
        f"<html>\r\n<head><title>{text}</title></head>\r\n<body>\r\n<center><h1>{text}"
        "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(status, raw=page.encode(), headers={"Content-Type": "text/html"})


class FakeServer:
    """A threaded HTTP/1.1 server on an ephemeral 127.0.0.1 port; use it as a context manager.

    ``calls`` logs every request (``requests`` keeps ``(method, path)`` pairs), ``errors``
    holds tracebacks of handler bugs (answered 500), ``faults`` the injected faults.
    """

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.calls: list[Call] = []
        self.errors: list[str] = []
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._started = self._stopped = False
        self.httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.port = int(self.httpd.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        # closes the listening socket of a fake that was never stopped, once it is collected
        self._close = weakref.finalize(self, self.httpd.server_close)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fake-{self.port}",
            daemon=True,
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent): the port refuses connections afterwards."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._started:
            self.httpd.shutdown()
            self._thread.join(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                conns, threads = list(self._conns), list(self._threads)
            if not threads:
                break
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            for thread in threads:
                thread.join(0.2)
        self._close()

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the server stops first; True when it is stopping."""
        return self._stopping.wait(max(0.0, seconds))

    # ------------------------------------------------------------------ faults
    def inject(self, route: str, **kwargs: Any) -> Fault:
        """Add a :class:`Fault` for ``route`` (see the module docstring) and return it."""
        fault = Fault(route, **kwargs)
        if fault.is_job_fault and route not in self.job_routes():
            raise ValueError(
                f"a job fault (completed_error/output) goes on one of "
                f"{sorted(self.job_routes())}, not {route!r}"
            )
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def billing_key(self, entry: dict[str, Any]) -> Any:
        """A ledger entry's default key for :meth:`billable_count`: the input's prompt."""
        return entry["input"].get("prompt")

    def billable_count(
        self, key_fn: Callable[[dict[str, Any]], Any] | None = None
    ) -> dict[Any, int]:
        """Accepted (billable) submissions per ``key_fn(ledger entry)`` (default
        :meth:`billing_key`); each fake keeps its ``ledger``."""
        with self.lock:
            entries = list(getattr(self, "ledger", []))
        counts: dict[Any, int] = {}
        for entry in entries:
            k = (key_fn or self.billing_key)(entry)
            counts[k] = counts.get(k, 0) + 1
        return counts

    def job_routes(self) -> set[str]:
        """Route names under which job faults may be injected (overridden by each fake)."""
        return {"job"}

    def _take(self, route: str, request: Request | None, job: bool) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.is_job_fault != job or fault.times == 0:
                    continue
                if job and fault.route not in self.job_routes():
                    continue
                if not job and fault.route not in (route, "any"):
                    continue
                if fault.when is not None and not _matches(fault.when, request):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                fault.hits += 1
                return fault
        return None

    def take_job_fault(self, request: Request | None = None) -> Fault | None:
        """The job fault the job being accepted now takes, if any (call under ``lock``)."""
        return self._take("job", request, job=True)

    def fault_response(self, fault: Fault, route: str, request: Request) -> Response:
        """The answer to a ``status`` fault; fakes override it to speak their protocol."""
        return Response(int(fault.status or 500), {"detail": "injected fault"})

    # ------------------------------------------------------------------ routing
    def route(self, request: Request) -> tuple[str, Handler]:
        raise NotImplementedError

    def hits(self, route: str) -> int:
        """How many requests reached ``route`` (faulted ones included)."""
        with self.lock:
            return sum(1 for call in self.calls if call.route == route)

    # ------------------------------------------------------------------ serving
    def _serve(self, http: _Handler, request: Request) -> None:
        name, handler = self.route(request)
        call = Call(request.method, request.path, name, time.time())
        with self.lock:
            self.requests.append((request.method, request.path))
            self.calls.append(call)
        fault = self._take(name, request, job=False)
        response: Response | None = None
        if fault is not None and fault.after:
            response = self._run(handler, request)
        if fault is not None and fault.delay and self.sleep(fault.delay):
            http.drop()
            return
        if fault is not None and fault.reset:
            http.drop(reset=True)
            return
        if fault is not None and fault.status is not None:
            response = self.fault_response(fault, name, request)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = retry_after_text(fault.retry_after)
        if response is None:
            response = self._run(handler, request)
        share = 0.0
        if fault is not None and fault.truncate:
            share = 0.5 if fault.truncate is True else float(fault.truncate)
        call.status = response.status
        http.send(response, truncate=share)

    def _run(self, handler: Handler, request: Request) -> Response:
        try:
            return handler(request)
        except BadRequestBody as exc:
            return self.bad_request(str(exc))
        except Exception:
            with self.lock:
                self.errors.append(traceback.format_exc())
            return Response(500, {"detail": "fake server bug (see fake.errors)"})

    def bad_request(self, message: str) -> Response:
        """The answer to a body that does not parse; fakes override it for their shape."""
        return Response(400, {"detail": message})


def _matches(when: Callable[[Request], bool], request: Request | None) -> bool:
    """A fault's ``when`` on a request; one that raises (say, on a body that is no JSON) misses."""
    if request is None:
        return False
    try:
        return bool(when(request))
    except Exception:
        return False


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 resets bursts of parallel clients
    daemon_threads = True
    block_on_close = False  # FakeServer.stop joins the handler threads itself

    def __init__(self, address: tuple[str, int], handler: type[_Handler], fake: FakeServer) -> None:
        self.fake: FakeServer = cast(FakeServer, weakref.proxy(fake))  # no cycle: GC can run
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._process,
            args=(request, client_address),
            name=f"fake-{self.fake.port}-conn",
            daemon=True,
        )
        with self.fake.lock:
            self.fake._conns.add(request)
            self.fake._threads.add(thread)
        thread.start()

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.fake.lock:
                self.fake._conns.discard(request)
                self.fake._threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that went away mid-answer is normal here (timeouts, resets)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        self.server.fake._serve(self, request)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def drop(self, reset: bool = False) -> None:
        """Close the connection without answering (``reset``: with a TCP RST)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if reset:  # linger 0: closing sends RST instead of FIN
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)

    def send_stream(self, response: Response, truncate: float = 0.0) -> None:
        """Send ``response.stream`` chunk by chunk; ``truncate`` drops the connection after the
        first chunk (a stream that breaks mid-way)."""
        assert response.stream is not None
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in response.stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                if truncate:
                    self.drop()
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def send(self, response: Response, truncate: float = 0.0) -> None:
        if response.stream is not None:
            self.send_stream(response, truncate)
            return
        data = response.raw
        headers = dict(response.headers)
        content_type = headers.pop("Content-Type", None)
        if data is None:
            data = json.dumps(response.body).encode()
            content_type = content_type or "application/json"
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", content_type or "application/octet-stream")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            limit = int(len(data) * truncate) if truncate else len(data)
            for start in range(0, limit, CHUNK):
                self.wfile.write(data[start : min(start + CHUNK, limit)])
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if truncate:
            self.drop()
        elif response.on_sent is not None:
            response.on_sent()


def file_response(
    request: Request, data: bytes, content_type: str, on_sent: Callable[[], None] | None = None
) -> Response:
    """A file download: 200 with the whole body, or 206 for a ``Range: bytes=N-[M]`` request
    (so a client may resume a broken download); 416 for a range past the end."""
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes"}
    wanted = request.headers.get("range", "").strip().lower()
    if not wanted.startswith("bytes=") or "," in wanted:
        return Response(200, raw=data, headers=headers, on_sent=on_sent)
    first_text, _, last_text = wanted[len("bytes=") :].partition("-")
    try:
        if first_text:
            first = int(first_text)
            last = min(int(last_text), len(data) - 1) if last_text else len(data) - 1
        else:  # the last N bytes
            first, last = max(0, len(data) - int(last_text)), len(data) - 1
    except ValueError:
        return Response(200, raw=data, headers=headers, on_sent=on_sent)
    if first >= len(data) or first > last:
        headers["Content-Range"] = f"bytes */{len(data)}"
        return Response(416, raw=b"", headers=headers)
    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    done = on_sent if last == len(data) - 1 else None
    return Response(206, raw=data[first : last + 1], headers=headers, on_sent=done)


def iso(timestamp: float) -> str:
    """An RFC 3339 UTC time with microseconds, as the provider APIs write them."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{seconds}.{int(timestamp % 1 * 1e6):06d}Z"


@contextlib.contextmanager
def serving(*fakes: FakeServer) -> Iterator[tuple[FakeServer, ...]]:
    """Start several fakes and stop them all at the end."""
    with contextlib.ExitStack() as stack:
        for fake in fakes:
            stack.enter_context(fake)
        yield fakes
