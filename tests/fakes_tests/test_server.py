"""The shared HTTP core: routing, each kind of fault, streaming, Range, clean shutdown."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.server import FakeServer, Handler, Request, Response, file_response

BLOB = bytes(range(256)) * 1024  # 256 KiB: several chunks


class Echo(FakeServer):
    """A minimal fake: /echo answers the body it got, /blob a file, /bug raises."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted = 0

    def route(self, request: Request) -> tuple[str, Handler]:
        if request.path == "/echo":
            return "echo", self._echo
        if request.path == "/blob":
            return "blob", lambda r: file_response(r, BLOB, "application/octet-stream")
        if request.path == "/bug":
            return "bug", lambda r: Response(200, {"x": 1 / 0})
        return "unknown", lambda r: Response(404, {"detail": "Not Found"})

    def _echo(self, request: Request) -> Response:
        with self.lock:
            self.accepted += 1
        return Response(200, {"method": request.method, "body": request.body.decode()})


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as fake:
        yield fake


def test_routes_log_and_counts(echo: Echo, client: httpx.Client) -> None:
    assert client.post(f"{echo.base}/echo", content=b"hi").json() == {
        "method": "POST",
        "body": "hi",
    }
    assert client.get(f"{echo.base}/nowhere").status_code == 404
    assert echo.requests == [("POST", "/echo"), ("GET", "/nowhere")]
    assert echo.hits("echo") == 1 and [c.status for c in echo.calls] == [200, 404]


def test_a_chunked_request_body_is_read(echo: Echo, client: httpx.Client) -> None:
    def parts() -> Iterator[bytes]:
        yield b"one "
        yield b"two"

    assert client.post(f"{echo.base}/echo", content=parts()).json()["body"] == "one two"


def test_status_fault_with_retry_after_then_normal(echo: Echo, client: httpx.Client) -> None:
    fault = echo.inject("echo", status=429, retry_after=2, times=2)
    answers = [client.post(f"{echo.base}/echo") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "2" and fault.hits == 2
    assert echo.accepted == 1


def test_when_picks_the_requests_a_fault_hits(echo: Echo, client: httpx.Client) -> None:
    echo.inject("any", status=503, times=None, when=lambda r: r.body == b"bad")
    assert client.post(f"{echo.base}/echo", content=b"bad").status_code == 503
    assert client.post(f"{echo.base}/echo", content=b"good").status_code == 200
    assert client.post(f"{echo.base}/echo", content=b"bad").status_code == 503
    echo.clear_faults()
    assert client.post(f"{echo.base}/echo", content=b"bad").status_code == 200


def test_reset_closes_without_an_answer(echo: Echo, client: httpx.Client) -> None:
    echo.inject("echo", reset=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(f"{echo.base}/echo")
    assert echo.accepted == 0
    assert client.post(f"{echo.base}/echo").status_code == 200  # the next connection is fine


def test_after_runs_the_handler_before_misbehaving(echo: Echo, client: httpx.Client) -> None:
    echo.inject("echo", reset=True, after=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(f"{echo.base}/echo")
    assert echo.accepted == 1  # done on the server, the answer lost


def test_delay_outlasts_the_client_timeout(echo: Echo) -> None:
    echo.inject("echo", delay=0.5)
    with httpx.Client(timeout=0.1) as short, pytest.raises(httpx.ReadTimeout):
        short.post(f"{echo.base}/echo")


def test_truncate_announces_the_full_length_and_sends_less(
    echo: Echo, client: httpx.Client
) -> None:
    echo.inject("blob", truncate=True)
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("GET", f"{echo.base}/blob") as answer,
    ):
        assert answer.headers["Content-Length"] == str(len(BLOB))
        for chunk in answer.iter_bytes():
            received += chunk
    assert 0 < len(received) < len(BLOB)
    assert client.get(f"{echo.base}/blob").content == BLOB


def test_range_requests_resume_a_download(echo: Echo, client: httpx.Client) -> None:
    part = client.get(f"{echo.base}/blob", headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == BLOB[1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(BLOB) - 1}/{len(BLOB)}"
    assert client.get(f"{echo.base}/blob", headers={"Range": "bytes=0-9"}).content == BLOB[:10]
    assert (
        client.get(f"{echo.base}/blob", headers={"Range": f"bytes={len(BLOB)}-"}).status_code == 416
    )


def test_a_handler_bug_is_a_500_and_recorded(echo: Echo, client: httpx.Client) -> None:
    assert client.get(f"{echo.base}/bug").status_code == 500
    assert "ZeroDivisionError" in echo.errors[0]
    echo.errors.clear()


def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fake-")]


def test_stop_ends_hangs_and_keepalive_connections_and_refuses_new_ones() -> None:
    before = len(fake_threads())
    fake = Echo().start()
    fake.inject("echo", delay=30)
    with httpx.Client(timeout=60) as client:
        assert client.get(f"{fake.base}/nowhere").status_code == 404  # a kept-alive connection

        def post() -> None:
            with pytest.raises(httpx.HTTPError):
                client.post(f"{fake.base}/echo")

        hung = threading.Thread(target=post)
        hung.start()
        time.sleep(0.2)
        started = time.monotonic()
        fake.stop()
        fake.stop()  # idempotent
        hung.join(5)
        assert time.monotonic() - started < 3 and not hung.is_alive()
    assert len(fake_threads()) == before
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", fake.port)) != 0
