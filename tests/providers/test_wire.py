"""The aiohttp wire, against a real server on 127.0.0.1: requests and bodies arrive intact,
streams arrive as they are sent, and every failure maps to the httpx error that keeps the retry
rules safe (only "never reached the server" may be retried for a paid submit)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aivpbuild.errors import ConfigError, SubmitUncertain
from aivpbuild.providers import wire
from aivpbuild.providers.http import RetryPolicy, download, send
from tests.fakes.fal import FalFake
from tests.fakes.server import FakeServer, Request, Response
from tests.providers.helpers import Sleeps, run

pytest.importorskip("aiohttp")

KEY = "transport-key"
AUTH = {"Authorization": f"Key {KEY}"}


@contextlib.asynccontextmanager
async def client(timeout: float = 5.0) -> AsyncIterator[wire.AiohttpWire]:
    engine = wire.AiohttpWire(timeout=timeout, max_connections=8)
    try:
        yield engine
    finally:
        await engine.aclose()


def submit_url(fake: FalFake) -> str:
    return f"{fake.queue_url}/fal-ai/bytedance/seedance/v1.5/pro/text-to-video"


def test_json_post_headers_and_a_streamed_download_arrive_intact(tmp_path: Path) -> None:
    async def go(fake: FalFake) -> tuple[int, dict[str, object], int]:
        async with client() as c:
            response = await c.request("POST", submit_url(fake), json={"prompt": "x", "duration": "4"},
                                       headers=AUTH)
            body = response.json()
            result = await c.request("GET", body["response_url"], headers=AUTH)
            size = await download(c, result.json()["video"]["url"], tmp_path / "out.mp4")
            return response.status_code, body, size

    with FalFake(key=KEY, latency=0.0) as fake:
        status, body, size = run(go(fake))
        assert status == 200 and body["status"] == "IN_QUEUE"
        assert fake.ledger[0]["input"] == {"prompt": "x", "duration": "4"}
    assert size == (tmp_path / "out.mp4").stat().st_size > 1000


def test_server_sent_events_arrive_line_by_line() -> None:
    async def go(fake: FalFake) -> list[str]:
        async with client() as c:
            handle = (await c.request("POST", submit_url(fake), json={"prompt": "x"}, headers=AUTH)).json()
            lines = []
            async with c.stream("GET", handle["status_url"] + "/stream", headers=AUTH) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        lines.append(line)
            return lines

    with FalFake(key=KEY, queue_seconds=0.1, run_seconds=0.1) as fake:
        lines = run(go(fake))
    assert '"IN_QUEUE"' in lines[0] and '"COMPLETED"' in lines[-1] and len(lines) >= 3


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def go() -> None:
        async with client() as c:
            await c.request("GET", f"http://127.0.0.1:{port}/")

    with pytest.raises(httpx.ConnectError):
        run(go())


@pytest.mark.parametrize("fault", [{"reset": True}, {"truncate": True}])
def test_failures_after_sending_are_not_connect_errors(fault: dict[str, bool]) -> None:
    async def go(fake: FalFake) -> None:
        async with client() as c:
            await c.request("POST", submit_url(fake), json={"prompt": "x"}, headers=AUTH)

    with FalFake(key=KEY) as fake:
        fake.inject("submit", after=True, **fault)
        with pytest.raises(httpx.TransportError) as caught:
            run(go(fake))
        assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
        assert len(fake.ledger) == 1  # it was accepted: exactly why it must not be resent


def test_a_paid_submit_cut_after_sending_is_uncertain_not_resent() -> None:
    async def go(fake: FalFake) -> None:
        async with client() as c:
            await send(c, "POST", submit_url(fake), what="submit", provider="fal.ai",
                       retry_on=lambda r: False, sleep=Sleeps(), idempotent=False,
                       json={"prompt": "x"}, headers=AUTH)

    with FalFake(key=KEY) as fake:
        fake.inject("submit", after=True, reset=True)
        with pytest.raises(SubmitUncertain):
            run(go(fake))
        assert fake.hits("submit") == 1 and len(fake.ledger) == 1


def test_a_hang_is_a_read_timeout_and_a_truncated_download_is_fetched_again(tmp_path: Path) -> None:
    async def hang(fake: FalFake) -> None:
        async with client(timeout=0.2) as c:
            await c.request("GET", f"{fake.queue_url}/fal-ai/x/requests/r/status", headers=AUTH)

    async def fetch(fake: FalFake) -> int:
        async with client() as c:
            body = (await c.request("POST", submit_url(fake), json={"prompt": "x"}, headers=AUTH)).json()
            url = (await c.request("GET", body["response_url"], headers=AUTH)).json()["video"]["url"]
            policy = RetryPolicy(download_attempts=3)
            return await download(c, url, tmp_path / "v.mp4", sleep=Sleeps(), policy=policy)

    with FalFake(key=KEY, latency=0.0) as fake:
        fake.inject("status", delay=2.0)
        with pytest.raises(httpx.ReadTimeout):
            run(hang(fake))
        fake.inject("download", truncate=True)
        assert run(fetch(fake)) == (tmp_path / "v.mp4").stat().st_size
        assert fake.hits("download") == 2


def test_the_setting_chooses_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(wire.make_wire("auto", timeout=5, jobs=4), wire.AiohttpWire)
    assert isinstance(wire.make_wire("httpx", timeout=5, jobs=4), wire.HttpxWire)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # httpx honours proxies
    assert isinstance(wire.make_wire("auto", timeout=5, jobs=4), wire.HttpxWire)
    monkeypatch.setattr(wire, "aiohttp_available", lambda: False)
    assert isinstance(wire.make_wire("auto", timeout=5, jobs=4), wire.HttpxWire)
    with pytest.raises(ConfigError, match=r"aivpbuild\[aiohttp\]"):
        wire.make_wire("aiohttp", timeout=5, jobs=4)


class _LongLines(FakeServer):
    """Server-sent events with a 200 KB line cut across chunks, CRLF endings, and a gzipped JSON
    answer: what aiohttp's own readline (64 KB limit) and a raw byte count would get wrong."""

    def route(self, request: Request) -> tuple[str, Any]:
        if request.path == "/json":
            body = gzip.compress(json.dumps({"ok": True}).encode())
            return "json", lambda r: Response(200, raw=body, headers={
                "Content-Type": "application/json", "Content-Encoding": "gzip"})
        line = b"data: " + b"x" * 200_000
        chunks = [line[:70_000], line[70_000:], b"\r\n\r\n: keep-alive\r\n\r\ndata: end\n\n"]
        return "lines", lambda r: Response(200, headers={"Content-Type": "text/event-stream"},
                                           stream=iter(chunks))


def test_long_event_lines_arrive_whole_and_encoded_bodies_are_decoded() -> None:
    async def go(base: str) -> tuple[list[str], object]:
        async with client() as c:
            async with c.stream("GET", f"{base}/lines") as r:
                lines = [line async for line in r.aiter_lines()]
            return lines, (await c.request("GET", f"{base}/json")).json()

    with _LongLines() as server:
        lines, body = run(go(server.base))
    assert lines == ["data: " + "x" * 200_000, "", ": keep-alive", "", "data: end", ""]
    assert body == {"ok": True}
