"""A tiny threaded HTTP server on 127.0.0.1 for the fake providers, with fault injection."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    """Misbehave on requests whose route matches: ``status`` (+ headers/body), ``reset`` the
    connection, ``delay`` seconds first, or ``truncate`` a download; ``times`` = how many."""

    route: str
    times: int = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    reset: bool = False
    delay: float = 0.0
    truncate: bool = False


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Handler = Callable[[Request], Response]


class FakeServer:
    """Routes ``(METHOD, path)`` to a handler chosen by :meth:`route`; counts every request."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                fake._handle(self, request)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        class _Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 resets bursts of parallel clients

        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def inject(self, route: str, **kwargs: Any) -> Fault:
        fault = Fault(route, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _fault_for(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.route in (route, "any") and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # ------------------------------------------------------------------ dispatch
    def route(self, request: Request) -> tuple[str, Handler]:  # overridden by each fake
        raise NotImplementedError

    def _handle(self, http: BaseHTTPRequestHandler, request: Request) -> None:
        name, handler = self.route(request)
        with self._lock:
            self.requests.append((request.method, request.path))
        fault = self._fault_for(name)
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.reset:
            http.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            http.close_connection = True
            http.connection.close()
            return
        if fault and fault.status is not None:
            response = Response(fault.status, fault.body, dict(fault.headers))
        else:
            response = handler(request)
        data = response.raw if response.raw is not None else json.dumps(response.body).encode()
        http.send_response(response.status)
        content_type = "video/mp4" if response.raw is not None else "application/json"
        http.send_header("Content-Type", response.headers.pop("Content-Type", content_type))
        for key, value in response.headers.items():
            http.send_header(key, value)
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        if fault and fault.truncate:
            http.wfile.write(data[: len(data) // 2])
            http.wfile.flush()
            http.close_connection = True
            http.connection.shutdown(socket.SHUT_RDWR)
            return
        http.wfile.write(data)
