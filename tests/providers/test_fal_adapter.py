"""The fal adapter against scripted HTTP: the namespace rule, uploads, submit/status/result/
cancel, every status mapping, every retry rule (with attempt counts) and 422 surfaced."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from aivpbuild.errors import ProviderError, SubmitUncertain
from aivpbuild.providers.base import (
    Completed,
    Failed,
    GenerationRequest,
    JobHandle,
    JobResult,
    Queued,
    Running,
)
from aivpbuild.providers.fal import FalProvider, owner_app, request_urls
from aivpbuild.providers.http import RetryPolicy
from aivpbuild.providers.settings import FalSettings
from tests.providers.helpers import Reply, Script, Sleeps, run

KEY = "fal-key-9f8e7d6c5b4a"
Q = "https://queue.test"
REST = "https://rest.test"
CDN = "https://cdn.test"
ENDPOINT = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
SUBMIT = f"{Q}/{ENDPOINT}"
BASE = f"{Q}/fal-ai/bytedance/requests/req-1"
STATUS = f"{BASE}/status"
POLICY = RetryPolicy(attempts=4, download_attempts=3)


def provider(script: Script, sleeps: Sleeps | None = None) -> FalProvider:
    return FalProvider(
        key=KEY,
        settings=FalSettings(queue_url=Q, rest_url=REST),
        client=script.client(),
        sleep=sleeps or Sleeps(),
        policy=POLICY,
    )


def handle() -> JobHandle:
    return JobHandle(
        provider="fal",
        request_id="req-1",
        endpoint=ENDPOINT,
        urls=request_urls(Q, ENDPOINT, "req-1"),
    )


def submitted(**extra: object) -> Reply:
    return Reply(200, {"request_id": "req-1", "status": "IN_QUEUE", "queue_position": 0, **extra})


# ------------------------------------------------------------------ urls
@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("fal-ai/bytedance/seedance/v1.5/pro/image-to-video", "fal-ai/bytedance"),
        ("fal-ai/kling-video/v2.1/pro/image-to-video", "fal-ai/kling-video"),
        ("fal-ai/veo3.1", "fal-ai/veo3.1"),
        ("workflows/alice/my-flow/sub/path", "workflows/alice/my-flow"),
        ("comfy/bob/wan-app/run", "comfy/bob/wan-app"),
        ("/fal-ai/minimax/hailuo-02/standard/text-to-video/", "fal-ai/minimax"),
    ],
)
def test_status_result_and_cancel_use_owner_and_app_only(endpoint: str, expected: str) -> None:
    assert owner_app(endpoint) == expected
    assert request_urls(Q, endpoint, "r9") == {
        "status": f"{Q}/{expected}/requests/r9/status",
        "response": f"{Q}/{expected}/requests/r9",
        "cancel": f"{Q}/{expected}/requests/r9/cancel",
    }


@pytest.mark.parametrize("endpoint", ["fal-ai", "workflows/alice", ""])
def test_an_endpoint_without_owner_and_app_is_refused(endpoint: str) -> None:
    with pytest.raises(ProviderError, match="owner/app"):
        owner_app(endpoint)


# ------------------------------------------------------------------ submit
def test_submit_posts_the_input_with_the_key_and_keeps_the_returned_urls() -> None:
    urls = {
        "status_url": "https://other.test/s",
        "response_url": "https://other.test/r",
        "cancel_url": "https://other.test/c",
    }
    script = Script().on("POST", SUBMIT, submitted(**urls))
    job = run(provider(script).submit(ENDPOINT, {"prompt": "a lighthouse", "duration": "5"}))
    sent = script.requests[0]
    assert sent.headers["authorization"] == f"Key {KEY}"
    assert json.loads(sent.content) == {"prompt": "a lighthouse", "duration": "5"}
    assert job.request_id == "req-1" and job.provider == "fal" and job.endpoint == ENDPOINT
    assert dict(job.urls) == {
        "status": "https://other.test/s",
        "response": "https://other.test/r",
        "cancel": "https://other.test/c",
    }
    assert JobHandle.from_json(json.loads(json.dumps(job.to_json()))) == job  # journal round trip


def test_submit_builds_owner_app_urls_when_the_answer_has_none() -> None:
    script = Script().on("POST", f"{Q}/workflows/alice/flow/v2", submitted())
    job = run(provider(script).submit("workflows/alice/flow/v2", {"prompt": "x"}))
    assert job.urls["status"] == f"{Q}/workflows/alice/flow/requests/req-1/status"
    assert job.urls["cancel"] == f"{Q}/workflows/alice/flow/requests/req-1/cancel"


def test_a_resumed_handle_polls_the_journaled_urls() -> None:
    saved = handle().to_json()
    script = Script().on("GET", STATUS, Reply(202, {"status": "IN_QUEUE", "queue_position": 1}))
    fresh = provider(script)  # a new process: nothing but the journal entry
    assert run(fresh.poll(JobHandle.from_json(saved))) == Queued(position=1)


def test_422_is_never_retried_and_names_the_fields() -> None:
    body = {
        "detail": [
            {"loc": ["body", "duration"], "msg": "must be one of 5, 10", "type": "enum"},
            {"loc": ["body", "prompt"], "msg": "field required", "type": "missing"},
        ]
    }
    script = Script().on("POST", SUBMIT, Reply(422, body))
    with pytest.raises(ProviderError) as info:
        run(provider(script).submit(ENDPOINT, {"duration": "7"}))
    assert script.count("POST", SUBMIT) == 1
    message = str(info.value)
    assert "422" in message and "body.duration: must be one of 5, 10" in message
    assert "body.prompt: field required" in message and not info.value.retryable


@pytest.mark.parametrize("status", [408, 409, 429])
def test_408_409_429_are_retried_on_submit(status: int) -> None:
    script = Script().on("POST", SUBMIT, Reply(status), Reply(status), submitted())
    sleeps = Sleeps()
    assert run(provider(script, sleeps).submit(ENDPOINT, {"prompt": "x"})).request_id == "req-1"
    assert script.count("POST", SUBMIT) == 3 and len(sleeps.waits) == 2
    assert sleeps.waits[0] <= 0.5 and sleeps.waits[1] <= 1.0  # full jitter under 0.5 x 2^n


@pytest.mark.parametrize("status", [502, 503, 504])
def test_ingress_errors_are_retried_but_not_errors_from_the_app(status: int) -> None:
    script = Script().on("POST", SUBMIT, Reply(status, {"detail": "bad gateway"}), submitted())
    assert run(provider(script).submit(ENDPOINT, {"prompt": "x"})).request_id == "req-1"
    assert script.count("POST", SUBMIT) == 2
    app_error = Reply(status, {"detail": "runner failed"}, headers={"x-fal-request-id": "req-0"})
    script = Script().on("POST", SUBMIT, app_error, submitted())
    with pytest.raises(ProviderError, match=f"HTTP {status}"):
        run(provider(script).submit(ENDPOINT, {"prompt": "x"}))
    assert script.count("POST", SUBMIT) == 1


def test_other_errors_are_not_retried() -> None:
    script = Script().on("POST", SUBMIT, Reply(500, {"detail": "internal"}), submitted())
    with pytest.raises(ProviderError, match="HTTP 500"):
        run(provider(script).submit(ENDPOINT, {"prompt": "x"}))
    assert script.count("POST", SUBMIT) == 1


def test_a_504_that_is_the_callers_own_timeout_is_not_retried() -> None:
    timeout = Reply(
        504, {"detail": "Request timed out"}, headers={"X-Fal-Request-Timeout-Type": "user"}
    )
    script = Script().on("GET", STATUS, timeout, Reply(200, {"status": "COMPLETED"}))
    with pytest.raises(ProviderError, match="504"):
        run(provider(script).poll(handle()))
    assert script.count("GET", STATUS) == 1


def test_retry_after_is_honoured_and_attempts_are_bounded() -> None:
    script = Script().on(
        "GET", STATUS, Reply(429, headers={"Retry-After": "3"}), Reply(200, {"status": "COMPLETED"})
    )
    sleeps = Sleeps()
    assert isinstance(run(provider(script, sleeps).poll(handle())), Completed)
    assert sleeps.waits == [3.0]
    script = Script().on("GET", STATUS, Reply(429, {"detail": "slow down"}))
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="429"):
        run(provider(script, sleeps).poll(handle()))
    assert script.count("GET", STATUS) == POLICY.attempts
    assert len(sleeps.waits) == POLICY.attempts - 1


def test_a_submit_whose_connection_breaks_after_sending_is_uncertain() -> None:
    script = Script().on("POST", SUBMIT, Reply(error=httpx.ReadError), submitted())
    with pytest.raises(SubmitUncertain) as info:
        run(provider(script).submit(ENDPOINT, {"prompt": "x"}))
    assert script.count("POST", SUBMIT) == 1 and "fal.ai may have accepted" in str(info.value)
    refused = Script().on("POST", SUBMIT, Reply(error=httpx.ConnectError), submitted())
    assert run(provider(refused).submit(ENDPOINT, {"prompt": "x"})).request_id == "req-1"
    assert refused.count("POST", SUBMIT) == 2


def test_connection_errors_on_gets_are_retried() -> None:
    script = Script().on(
        "GET",
        STATUS,
        Reply(error=httpx.RemoteProtocolError),
        Reply(error=httpx.ConnectError),
        Reply(202, {"status": "IN_PROGRESS", "logs": None}),
    )
    assert isinstance(run(provider(script).poll(handle())), Running)
    assert script.count("GET", STATUS) == 3


# ------------------------------------------------------------------ status
def test_every_status_maps_and_only_new_log_lines_are_shown() -> None:
    def logs(*messages: str) -> list[dict[str, str]]:
        return [
            {"message": m, "level": "INFO", "source": "user", "timestamp": "t"} for m in messages
        ]

    script = Script().on(
        "GET",
        STATUS,
        Reply(202, {"status": "IN_QUEUE", "queue_position": 3}),
        Reply(202, {"status": "IN_PROGRESS", "logs": logs("loading")}),
        Reply(202, {"status": "IN_PROGRESS", "logs": logs("loading", "step 1/2")}),
        Reply(
            200,
            {
                "status": "COMPLETED",
                "metrics": {"inference_time": 1.5},
                "logs": logs("loading", "step 1/2", "done"),
            },
        ),
    )
    fal = provider(script)
    statuses = [run(fal.poll(handle())) for _ in range(4)]
    assert statuses == [
        Queued(position=3),
        Running(logs=("loading",)),
        Running(logs=("step 1/2",)),
        Completed(logs=("done",)),
    ]
    assert all(r.url.params["logs"] == "1" for r in script.requests)


def test_completed_with_an_error_is_a_billed_failure() -> None:
    script = Script().on(
        "GET",
        STATUS,
        Reply(
            200,
            {
                "status": "COMPLETED",
                "error": "Runner disconnected",
                "error_type": "runner_disconnected",
            },
        ),
    )
    assert run(provider(script).poll(handle())) == Failed(
        error="Runner disconnected", error_type="runner_disconnected", billed=True
    )


def test_an_unknown_status_is_an_error() -> None:
    script = Script().on("GET", STATUS, Reply(200, {"status": "EXPLODED"}))
    with pytest.raises(ProviderError, match="EXPLODED"):
        run(provider(script).poll(handle()))


# ------------------------------------------------------------------ result, fetch, cancel
def test_result_carries_url_seed_and_file_metadata() -> None:
    video = {
        "url": f"{CDN}/files/out.mp4",
        "content_type": "video/mp4",
        "file_name": "out.mp4",
        "file_size": 4242,
    }
    script = Script().on(
        "GET", STATUS, Reply(200, {"status": "COMPLETED", "metrics": {"inference_time": 2.5}})
    )
    script.on("GET", BASE, Reply(200, {"video": video, "seed": 1234}))
    fal = provider(script)
    run(fal.poll(handle()))
    result = run(fal.result(handle()))
    assert result.video_url == video["url"] and result.seed == 1234
    assert result.metadata["file_size"] == 4242 and result.metadata["content_type"] == "video/mp4"
    assert result.metadata["request_id"] == "req-1" and result.metadata["inference_time"] == 2.5


def test_a_failed_result_reports_the_error_type_and_a_missing_video_is_an_error() -> None:
    failed = Reply(
        504,
        {"detail": "Request timed out", "error_type": "request_timeout"},
        headers={"X-Fal-Error-Type": "request_timeout", "x-fal-request-id": "req-1"},
    )
    script = Script().on("GET", BASE, failed)
    with pytest.raises(ProviderError, match=r"504 \(request_timeout\): Request timed out"):
        run(provider(script).result(handle()))
    script = Script().on("GET", BASE, Reply(200, {"images": []}))
    with pytest.raises(ProviderError, match="no video URL"):
        run(provider(script).result(handle()))


def test_fetch_streams_without_the_key_and_retries_a_truncated_body(tmp_path: Path) -> None:
    data = b"\x00\x00\x00\x18ftypmp42" + b"m" * 5000
    url = f"{CDN}/files/out.mp4"
    script = Script().on(
        "GET",
        url,
        Reply(raw=data[:100], headers={"Content-Length": str(len(data))}),
        Reply(raw=data),
    )
    dest = tmp_path / "out.mp4"
    run(provider(script).fetch(JobResult(video_url=url, metadata={"file_size": len(data)}), dest))
    assert dest.read_bytes() == data and script.count("GET", url) == 2
    assert all("authorization" not in r.headers for r in script.requests)  # the CDN never sees it


def test_fetch_fails_cleanly_when_the_output_stays_truncated(tmp_path: Path) -> None:
    url = f"{CDN}/files/out.mp4"
    script = Script().on("GET", url, Reply(raw=b"abc", headers={"Content-Length": "10"}))
    dest = tmp_path / "out.mp4"
    with pytest.raises(ProviderError, match="truncated"):
        run(provider(script).fetch(JobResult(video_url=url), dest))
    assert script.count("GET", url) == POLICY.download_attempts and not dest.exists()


def test_cancel_puts_and_tolerates_a_finished_job() -> None:
    cancel = f"{BASE}/cancel"
    script = Script().on(
        "PUT",
        cancel,
        Reply(202, {"status": "CANCELLATION_REQUESTED"}),
        Reply(400, {"status": "ALREADY_COMPLETED"}),
        Reply(404, {"status": "NOT_FOUND"}),
        Reply(401, {"detail": "no"}),
    )
    fal = provider(script)
    for _ in range(3):
        run(fal.cancel(handle()))
    with pytest.raises(ProviderError, match="refused the key"):
        run(fal.cancel(handle()))
    assert script.count("PUT", cancel) == 4


# ------------------------------------------------------------------ upload and input
def token(expires: str = "2099-01-01T00:00:00Z") -> Reply:
    return Reply(
        200, {"token": "cdn-tok", "token_type": "Bearer", "base_url": CDN, "expires_at": expires}
    )


def test_upload_gets_a_storage_token_then_posts_the_raw_bytes(tmp_path: Path) -> None:
    png = tmp_path / "frame one.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    script = Script().on("POST", f"{REST}/storage/auth/token", token())
    script.on(
        "POST",
        f"{CDN}/files/upload",
        Reply(200, {"access_url": f"{CDN}/files/a.png"}),
        Reply(200, {"access_url": f"{CDN}/files/b.png"}),
    )
    fal = provider(script)
    assert run(fal.upload(png)) == f"{CDN}/files/a.png"
    assert run(fal.upload(png)) == f"{CDN}/files/b.png"
    token_requests = script.sent("POST", f"{REST}/storage/auth/token")
    assert len(token_requests) == 1  # the token is reused until it nearly expires
    assert token_requests[0].url.params["storage_type"] == "fal-cdn-v3"
    assert token_requests[0].content == b"{}"
    assert token_requests[0].headers["authorization"] == f"Key {KEY}"
    upload = script.sent("POST", f"{CDN}/files/upload")[0]
    assert (
        upload.content == png.read_bytes() and upload.headers["authorization"] == "Bearer cdn-tok"
    )
    assert upload.headers["content-type"] == "image/png"
    assert upload.headers["x-fal-file-name"] == "frame one.png"


def test_an_expired_token_is_renewed(tmp_path: Path) -> None:
    png = tmp_path / "k.png"
    png.write_bytes(b"png")
    script = Script().on("POST", f"{REST}/storage/auth/token", token("2000-01-01T00:00:00Z"))
    script.on("POST", f"{CDN}/files/upload", Reply(200, {"access_url": f"{CDN}/files/a.png"}))
    fal = provider(script)
    run(fal.upload(png))
    run(fal.upload(png))
    assert script.count("POST", f"{REST}/storage/auth/token") == 2


def request(**files: Path) -> GenerationRequest:
    return GenerationRequest(
        target="clip:a",
        provider="fal",
        model="seedance",
        endpoint=ENDPOINT,
        mode="i2v",
        prompt="p",
        duration=5,
        resolution="720p",
        width=1280,
        height=720,
        aspect_ratio="16:9",
        fps=Fraction(24),
        audio=False,
        image=files.get("image_url"),
        end_image=files.get("end_image_url"),
        payload={"prompt": "p", "duration": "5"},
        file_inputs=files,
    )


def test_build_input_merges_uploaded_urls_into_the_payload(tmp_path: Path) -> None:
    start, end = tmp_path / "a.png", tmp_path / "b.png"
    req = request(image_url=start, end_image_url=end)
    built = provider(Script()).build_input(req, {start: "https://cdn/a", end: "https://cdn/b"})
    assert built == {
        "prompt": "p",
        "duration": "5",
        "image_url": "https://cdn/a",
        "end_image_url": "https://cdn/b",
    }
    assert "image_url" not in req.payload  # the catalogue's payload is not modified
    with pytest.raises(ProviderError, match="not uploaded"):
        provider(Script()).build_input(req, {start: "https://cdn/a"})


def test_class_attributes_and_settings() -> None:
    fal = provider(Script())
    assert (fal.name, fal.version, fal.paid, fal.default_concurrency) == ("fal", "1", True, 8)
    tuned = FalProvider(key=KEY, settings=FalSettings(concurrency=32, poll_interval=0.5))
    assert tuned.default_concurrency == 32 and tuned.poll_interval == 0.5
    assert KEY not in repr(tuned)
