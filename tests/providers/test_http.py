"""The shared HTTP rules: Retry-After, backoff, what is retried and what is not, streamed
downloads that survive a truncated or reset body and fail cleanly when they cannot."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import httpx
import pytest

from aivpbuild.errors import ProviderError, SubmitUncertain
from aivpbuild.providers.http import RetryPolicy, backoff, detail, download, retry_after, send
from tests.providers.helpers import BrokenStream, Reply, Script, Sleeps, run

URL = "https://api.test/thing"
FILE = "https://cdn.test/out.mp4"
POLICY = RetryPolicy(attempts=4, download_attempts=3)


def on_503(response: httpx.Response) -> bool:
    return response.status_code == 503


def call(
    script: Script, sleeps: Sleeps, *, idempotent: bool = True, method: str = "GET"
) -> httpx.Response:
    async def go() -> httpx.Response:
        async with script.client() as client:
            return await send(
                client,
                method,
                URL,
                what="a call",
                provider="Prov",
                retry_on=on_503,
                sleep=sleeps,
                policy=POLICY,
                idempotent=idempotent,
            )

    return run(go())


def response(
    status: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, content=body)


def test_retry_after_seconds_dates_garbage_and_cap() -> None:
    assert retry_after(response(429, {"Retry-After": "7"})) == 7.0
    assert retry_after(response(429, {"Retry-After": "-3"})) == 0.0
    assert retry_after(response(429, {"Retry-After": "soon"})) is None
    assert retry_after(response(429)) is None
    assert retry_after(response(429, {"Retry-After": "9000"}), cap=120) == 120
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= (retry_after(response(503, {"Retry-After": date})) or 0) <= 30


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    for attempt in range(8):
        bound = min(20.0, 0.5 * 2**attempt)
        waits = [backoff(attempt) for _ in range(200)]
        assert all(0 <= w <= bound for w in waits)
        assert max(waits) > bound / 2 and min(waits) < bound / 2  # spread over the whole range


def test_a_retryable_status_is_retried_honouring_retry_after() -> None:
    script = Script().on(
        "GET", URL, Reply(503, headers={"Retry-After": "4"}), Reply(503), Reply(200, {"ok": 1})
    )
    sleeps = Sleeps()
    assert call(script, sleeps).json() == {"ok": 1}
    assert script.count("GET", URL) == 3
    assert sleeps.waits[0] == 4.0 and 0 <= sleeps.waits[1] <= 1.0  # then backoff for attempt 1


def test_a_status_the_rule_does_not_name_is_returned_at_once() -> None:
    script = Script().on("GET", URL, Reply(500), Reply(200))
    sleeps = Sleeps()
    assert call(script, sleeps).status_code == 500
    assert script.count("GET", URL) == 1 and sleeps.waits == []


def test_retries_are_bounded_and_the_last_answer_is_returned() -> None:
    script = Script().on("GET", URL, Reply(503))
    sleeps = Sleeps()
    assert call(script, sleeps).status_code == 503
    assert script.count("GET", URL) == POLICY.attempts and len(sleeps.waits) == POLICY.attempts - 1


def test_a_connection_never_made_is_retried_even_for_a_submit() -> None:
    script = Script().on(
        "POST",
        URL,
        Reply(error=httpx.ConnectError),
        Reply(error=httpx.ConnectTimeout),
        Reply(201, {"id": "x"}),
    )
    assert call(script, Sleeps(), idempotent=False, method="POST").status_code == 201
    assert script.count("POST", URL) == 3


def test_a_connection_broken_after_sending_a_submit_is_uncertain_not_retried() -> None:
    for error in (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteError):
        script = Script().on("POST", URL, Reply(error=error), Reply(201))
        with pytest.raises(SubmitUncertain) as info:
            call(script, Sleeps(), idempotent=False, method="POST")
        assert script.count("POST", URL) == 1
        assert "may have accepted" in str(info.value) and info.value.uncertain


def test_a_broken_connection_is_retried_for_a_get_then_fails_cleanly() -> None:
    script = Script().on("GET", URL, Reply(error=httpx.ReadError), Reply(200, {"ok": 1}))
    assert call(script, Sleeps()).status_code == 200 and script.count("GET", URL) == 2
    script = Script().on("GET", URL, Reply(error=httpx.ConnectError))
    with pytest.raises(ProviderError) as info:
        call(script, Sleeps())
    assert script.count("GET", URL) == POLICY.attempts
    assert (
        info.value.retryable
        and "cannot reach Prov" in str(info.value)
        and "4 tries" in str(info.value)
    )


def test_detail_reads_every_error_shape() -> None:
    def text(body: object) -> str:
        return detail(httpx.Response(400, json=body))

    assert (
        text({"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]})
        == "body.prompt: field required"
    )
    assert (
        text({"title": "Input validation failed", "detail": "duration must be <= 4", "status": 422})
        == "Input validation failed: duration must be <= 4"
    )
    assert "prompt: prompt is required" in text(
        {
            "title": "Invalid",
            "detail": "bad input",
            "invalid_fields": [
                {"type": "required", "field": "prompt", "description": "prompt is required"}
            ],
        }
    )
    assert text({"error": {"message": "boom"}}) == "boom"
    assert (
        detail(httpx.Response(502, content=b"<html>Bad gateway</html>"))
        == "<html>Bad gateway</html>"
    )


# ------------------------------------------------------------------ downloads
def fetch(script: Script, dest: Path, sleeps: Sleeps, expected_size: int | None = None) -> int:
    async def go() -> int:
        async with script.client() as client:
            return await download(
                client,
                FILE,
                dest,
                sleep=sleeps,
                policy=POLICY,
                expected_size=expected_size,
                what="test output",
            )

    return run(go())


def test_download_streams_in_chunks_to_the_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB: several chunks
    script = Script().on("GET", FILE, Reply(raw=data, headers={"Content-Length": str(len(data))}))
    dest = tmp_path / "out.mp4"
    assert fetch(script, dest, Sleeps()) == len(data) and dest.read_bytes() == data


def test_a_truncated_download_is_retried_from_the_url(tmp_path: Path) -> None:
    data = b"v" * 1000
    short = Reply(raw=data[:400], headers={"Content-Length": "1000"})
    script = Script().on(
        "GET",
        FILE,
        short,
        Reply(stream=BrokenStream(data[:10]), headers={"Content-Length": "1000"}),
        Reply(raw=data),
    )
    dest = tmp_path / "out.mp4"
    sleeps = Sleeps()
    assert fetch(script, dest, sleeps) == 1000 and dest.read_bytes() == data
    assert script.count("GET", FILE) == 3 and len(sleeps.waits) == 2


def test_a_download_that_stays_truncated_fails_cleanly(tmp_path: Path) -> None:
    script = Script().on("GET", FILE, Reply(raw=b"x" * 10, headers={"Content-Length": "99"}))
    dest = tmp_path / "out.mp4"
    with pytest.raises(ProviderError) as info:
        fetch(script, dest, Sleeps())
    assert script.count("GET", FILE) == POLICY.download_attempts
    assert "truncated (10 of 99 bytes)" in str(info.value) and "not resubmitted" in str(info.value)
    assert not dest.exists()  # no partial file left for anyone to mistake for the output


def test_expected_size_catches_a_short_body_without_content_length(tmp_path: Path) -> None:
    def chunked(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"y" * 50))  # no Content-Length header

    script = Script().on("GET", FILE, chunked)
    with pytest.raises(ProviderError, match="truncated"):
        fetch(script, tmp_path / "o.mp4", Sleeps(), expected_size=80)
    assert fetch(script, tmp_path / "o.mp4", Sleeps(), expected_size=50) == 50


def test_an_expired_output_is_not_retried(tmp_path: Path) -> None:
    script = Script().on("GET", FILE, Reply(404, {"detail": "File expired"}))
    with pytest.raises(ProviderError, match="gone from the provider"):
        fetch(script, tmp_path / "o.mp4", Sleeps())
    assert script.count("GET", FILE) == 1


def test_a_server_error_on_download_is_retried_with_retry_after(tmp_path: Path) -> None:
    script = Script().on("GET", FILE, Reply(503, headers={"Retry-After": "2"}), Reply(raw=b"ok"))
    sleeps = Sleeps()
    assert fetch(script, tmp_path / "o.mp4", sleeps) == 2 and sleeps.waits == [2.0]
