"""The fake fal.ai: queue, storage and CDN routes as PROVIDERS.md describes them, and faults."""

from __future__ import annotations

import io
import time
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from tests.fakes.fal import FalFake
from tests.fakes.media import corrupt_mp4
from tests.fakes_tests.conftest import FAL_KEY, wait_for

AUTH = {"Authorization": f"Key {FAL_KEY}"}
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
TINY = {"resolution": "144p", "aspect_ratio": "16:9", "duration": "1"}


def submit(
    client: httpx.Client, fal: FalFake, endpoint: str = T2V, **inputs: Any
) -> httpx.Response:
    return client.post(
        f"{fal.queue_url}/{endpoint}",
        json={"prompt": "a lighthouse", **TINY, **inputs},
        headers=AUTH,
    )


def finish(client: httpx.Client, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Poll the status URL with logs until COMPLETED; every status body seen."""
    answers = wait_for(
        lambda: client.get(job["status_url"], params={"logs": 1}, headers=AUTH),
        lambda r: r.status_code == 200,
    )
    return [a.json() for a in answers]


def test_auth_is_required_on_queue_and_rest(fal: FalFake, client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Key wrong"}, {"Authorization": f"Bearer {FAL_KEY}"}):
        answer = client.post(f"{fal.queue_url}/{T2V}", json={"prompt": "x"}, headers=headers)
        assert answer.status_code == 401 and isinstance(answer.json()["detail"], str)
        token = client.post(
            f"{fal.rest_url}/storage/auth/token",
            params={"storage_type": "fal-cdn-v3"},
            json={},
            headers=headers,
        )
        assert token.status_code == 401
    assert fal.ledger == []


def test_submit_poll_result_download(fal: FalFake, client: httpx.Client) -> None:
    fal.run_seconds = 0.5  # polls every 10 ms must see it running even on a loaded machine
    answer = submit(client, fal, seed=7)
    assert answer.status_code == 200
    job = answer.json()
    base = f"{fal.queue_url}/fal-ai/bytedance/requests/{job['request_id']}"  # owner/app only
    assert job == {
        "request_id": job["request_id"],
        "status": "IN_QUEUE",
        "queue_position": job["queue_position"],
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
    }
    early = client.get(job["response_url"], headers=AUTH)
    assert early.status_code == 400 and early.json() == {"detail": "Request is still in progress"}
    statuses = finish(client, job)
    kinds = [s["status"] for s in statuses]
    assert kinds[0] == "IN_QUEUE" and "IN_PROGRESS" in kinds and kinds[-1] == "COMPLETED"
    running = next(s for s in statuses if s["status"] == "IN_PROGRESS")
    assert running["logs"][0]["message"] == "loading model"
    assert set(running["logs"][0]) == {"message", "level", "source", "timestamp"}
    done = statuses[-1]
    assert "error" not in done and done["metrics"]["inference_time"] == pytest.approx(
        fal.run_seconds, abs=0.01
    )
    assert [log["message"] for log in done["logs"]][-1] == "step 4/4"
    result = client.get(job["response_url"], headers=AUTH)
    assert result.status_code == 200
    video = result.json()["video"]
    assert result.json()["seed"] == 7 and video["content_type"] == "video/mp4"
    assert video["url"].startswith(fal.cdn_url) and video["file_name"].endswith(".mp4")
    download = client.get(video["url"])  # the CDN wants no key
    assert (
        download.headers["Content-Length"] == str(video["file_size"]) == str(len(download.content))
    )
    with av.open(io.BytesIO(download.content), "r") as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (256, 144)
        assert sum(1 for _ in container.decode(stream)) == 24
    assert fal.ledger[0]["endpoint"] == T2V and fal.ledger[0]["request_id"] == job["request_id"]
    assert fal.ledger[0]["input"]["seed"] == 7


def test_logs_only_when_asked_and_a_random_seed(fal: FalFake, client: httpx.Client) -> None:
    job = submit(client, fal).json()
    answers = wait_for(
        lambda: client.get(job["status_url"], headers=AUTH).json(),
        lambda s: s["status"] == "COMPLETED",
    )
    assert all(a.get("logs") is None for a in answers)
    assert isinstance(client.get(job["response_url"], headers=AUTH).json()["seed"], int)


def test_queue_positions_count_down(client: httpx.Client) -> None:
    with FalFake(key=FAL_KEY, queue_seconds=0.3, run_seconds=0.05, queue_depth=3, runners=1) as fal:
        first = submit(client, fal).json()
        second = submit(client, fal, prompt="second").json()
        assert first["queue_position"] == 3 and second["queue_position"] == 4
        statuses = finish(client, second)
        positions = [s["queue_position"] for s in statuses if s["status"] == "IN_QUEUE"]
        assert positions == sorted(positions, reverse=True) and positions[-1] < positions[0]
        assert fal.latency == pytest.approx(0.35)


def test_latency_splits_into_queue_and_run() -> None:
    fal = FalFake(latency=0.4)
    assert (fal.queue_seconds, fal.run_seconds) == (0.2, 0.2)
    fal.latency = 1.0
    assert (fal.queue_seconds, fal.run_seconds) == (0.5, 0.5)
    fal.stop()


@pytest.mark.parametrize(
    ("endpoint", "owner_app"),
    [
        ("workflows/acme/storyboard/v2", "workflows/acme/storyboard"),
        ("comfy/acme/wan-flow", "comfy/acme/wan-flow"),
        ("fal-ai/kling-video/v2.6/pro/text-to-video", "fal-ai/kling-video"),
    ],
)
def test_namespaces_shift_owner_and_app(
    fal: FalFake, client: httpx.Client, endpoint: str, owner_app: str
) -> None:
    job = submit(client, fal, endpoint).json()
    assert job["status_url"] == f"{fal.queue_url}/{owner_app}/requests/{job['request_id']}/status"
    assert client.get(job["status_url"], headers=AUTH).status_code in (200, 202)
    if endpoint != owner_app:
        with_subpath = f"{fal.queue_url}/{endpoint}/requests/{job['request_id']}/status"
        assert client.get(with_subpath, headers=AUTH).status_code == 404


def test_cancel(fal: FalFake, client: httpx.Client) -> None:
    job = submit(client, fal).json()
    cancel = client.put(job["cancel_url"], headers=AUTH)
    assert cancel.status_code == 202 and cancel.json() == {"status": "CANCELLATION_REQUESTED"}
    status = client.get(job["status_url"], headers=AUTH).json()
    assert status["status"] == "COMPLETED" and status["error_type"] == "request_cancelled"
    assert fal.jobs[job["request_id"]].cancelled
    again = client.put(job["cancel_url"], headers=AUTH)
    assert again.status_code == 400 and again.json() == {"status": "ALREADY_COMPLETED"}
    unknown = client.put(job["cancel_url"].replace(job["request_id"], "nope"), headers=AUTH)
    assert unknown.status_code == 404 and unknown.json() == {"status": "NOT_FOUND"}


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(client: httpx.Client, fal: FalFake, data: bytes, name: str = "key.png") -> str:
    token = client.post(
        f"{fal.rest_url}/storage/auth/token",
        params={"storage_type": "fal-cdn-v3"},
        json={},
        headers=AUTH,
    )
    assert token.status_code == 200
    body = token.json()
    assert (
        set(body) == {"token", "token_type", "base_url", "expires_at"}
        and body["base_url"] == fal.cdn_url
    )
    stored = client.post(
        f"{body['base_url']}/files/upload",
        content=data,
        headers={
            "Authorization": f"{body['token_type']} {body['token']}",
            "Content-Type": "image/png",
            "X-Fal-File-Name": name,
        },
    )
    assert stored.status_code == 200
    return str(stored.json()["access_url"])


def test_storage_upload_and_image_to_video_takes_the_keyframe_shape(
    fal: FalFake, client: httpx.Client
) -> None:
    portrait = png(36, 64)
    url = upload(client, fal, portrait)
    assert url.startswith(f"{fal.cdn_url}/files/") and url.endswith("/key.png")
    fetched = client.get(url)
    assert fetched.content == portrait and fetched.headers["Content-Type"] == "image/png"
    assert list(fal.uploads.values()) == [portrait]
    job = submit(client, fal, I2V, image_url=url, aspect_ratio="auto").json()
    finish(client, job)
    video = client.get(job["response_url"], headers=AUTH).json()["video"]
    with av.open(io.BytesIO(client.get(video["url"]).content), "r") as container:
        context = container.streams.video[0].codec_context
        assert (context.width, context.height) == (144, 256)


def test_storage_refuses_a_bad_token_or_no_storage_type(fal: FalFake, client: httpx.Client) -> None:
    refused = client.post(
        f"{fal.cdn_url}/files/upload",
        content=b"x",
        headers={"Authorization": "Bearer forged", "Content-Type": "image/png"},
    )
    assert refused.status_code == 401
    missing = client.post(f"{fal.rest_url}/storage/auth/token", json={}, headers=AUTH)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "query",
        "storage_type",
    ]
    assert fal.uploads == {}


def test_ledger_and_billable_count(fal: FalFake, client: httpx.Client) -> None:
    for prompt in ("a", "a", "b"):
        assert submit(client, fal, prompt=prompt).status_code == 200
    submit(client, fal, endpoint=T2V + "?fal_webhook=http://127.0.0.1:9/hook", prompt="c")
    assert fal.billable_count() == {"a": 2, "b": 1, "c": 1}
    assert fal.billable_count(lambda e: e["endpoint"]) == {T2V: 4}
    assert [e["webhook"] for e in fal.ledger] == [None, None, None, "http://127.0.0.1:9/hook"]
    assert all(e["time"] <= time.time() for e in fal.ledger)


# ---------------------------------------------------------------------------- faults
def test_429_with_and_without_retry_after(fal: FalFake, client: httpx.Client) -> None:
    fal.inject("submit", status=429, retry_after=1)
    fal.inject("submit", status=429)
    first, second, third = (submit(client, fal) for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == "1" and "Retry-After" not in second.headers
    assert isinstance(first.json()["detail"], str)
    assert third.status_code == 200 and len(fal.ledger) == 1


def test_ingress_and_app_level_5xx(fal: FalFake, client: httpx.Client) -> None:
    fal.inject("submit", status=503)  # ingress: the load balancer's page, no request id
    ingress = submit(client, fal)
    assert ingress.status_code == 503 and "x-fal-request-id" not in ingress.headers
    assert ingress.headers["Content-Type"].startswith("text/html")
    fal.inject("submit", status=503, ingress=False)
    app = submit(client, fal)
    assert app.status_code == 503 and app.headers["x-fal-request-id"]
    assert app.headers["X-Fal-Error-Type"] == "runner_disconnected"
    assert app.json() == {"detail": "Service Unavailable", "error_type": "runner_disconnected"}
    assert fal.ledger == []  # neither was accepted
    job = submit(client, fal).json()
    fal.inject("status", status=504, timeout_type="user")
    timeout = client.get(job["status_url"], headers=AUTH)
    assert timeout.status_code == 504 and timeout.headers["X-Fal-Request-Timeout-Type"] == "user"
    assert timeout.headers["x-fal-request-id"] == job["request_id"]
    assert timeout.json()["error_type"] == "request_timeout"


@pytest.mark.parametrize(
    ("error_type", "status"),
    [("runner_disconnected", 503), ("request_timeout", 504), ("internal_error", 500)],
)
def test_completed_with_an_error(
    fal: FalFake, client: httpx.Client, error_type: str, status: int
) -> None:
    fal.inject("result", completed_error=error_type, error="it broke")
    job = submit(client, fal).json()
    done = finish(client, job)[-1]
    assert done["status"] == "COMPLETED" and done["error"] == "it broke"
    assert done["error_type"] == error_type
    result = client.get(job["response_url"], headers=AUTH)
    assert result.status_code == status and result.headers["X-Fal-Error-Type"] == error_type
    assert result.json() == {"detail": "it broke", "error_type": error_type}
    assert len(fal.ledger) == 1  # accepted: billable


def test_fail_next_hits_only_the_next_job(fal: FalFake, client: httpx.Client) -> None:
    fal.fail_next.append(("startup_timeout", "no runner started"))
    failed, fine = submit(client, fal).json(), submit(client, fal).json()
    assert finish(client, failed)[-1]["error_type"] == "startup_timeout"
    assert "error" not in finish(client, fine)[-1]


@pytest.mark.parametrize(
    ("endpoint", "inputs", "loc"),
    [
        (T2V, {"prompt": ""}, ["body", "prompt"]),
        (T2V, {"duration": "forever"}, ["body", "duration"]),
        (T2V, {"duration": "0"}, ["body", "duration"]),
        (I2V, {}, ["body", "image_url"]),
    ],
)
def test_invalid_input_is_a_422_at_the_result(
    fal: FalFake, client: httpx.Client, endpoint: str, inputs: dict[str, Any], loc: list[str]
) -> None:
    job = submit(client, fal, endpoint, **inputs).json()
    assert "error" not in finish(client, job)[-1]
    result = client.get(job["response_url"], headers=AUTH)
    assert result.status_code == 422
    item = result.json()["detail"][0]
    assert item["loc"] == loc and set(item) >= {"loc", "msg", "type"}


def test_validate_on_submit_refuses_before_accepting(client: httpx.Client) -> None:
    with FalFake(key=FAL_KEY, validate_on_submit=True) as fal:
        answer = submit(client, fal, prompt=None)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "prompt"]
        assert fal.ledger == []


def test_injected_422_has_the_validation_shape(fal: FalFake, client: httpx.Client) -> None:
    fal.inject("submit", status=422)
    answer = submit(client, fal)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "prompt"]


def completed_video_url(client: httpx.Client, fal: FalFake, **inputs: Any) -> str:
    job = submit(client, fal, **inputs).json()
    finish(client, job)
    return str(client.get(job["response_url"], headers=AUTH).json()["video"]["url"])


def test_truncated_and_reset_downloads(fal: FalFake, client: httpx.Client) -> None:
    url = completed_video_url(client, fal)
    fal.inject("download", truncate=True)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)
    fal.inject("download", reset=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(url)
    assert client.get(url).status_code == 200  # the file is still there


def test_a_hang_outlasts_the_client_timeout(fal: FalFake) -> None:
    fal.inject("any", delay=1)
    with httpx.Client(timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(f"{fal.queue_url}/{T2V}", json={"prompt": "x"}, headers=AUTH)


def test_submit_accepted_but_the_answer_lost(fal: FalFake, client: httpx.Client) -> None:
    fal.inject("submit", reset=True, after=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        submit(client, fal)
    assert len(fal.ledger) == 1  # billed, though the client never saw the request id


def test_outputs_expire_after_a_while(client: httpx.Client) -> None:
    with FalFake(key=FAL_KEY, run_seconds=0.05, expire_after=0.3) as fal:
        url = completed_video_url(client, fal)
        assert client.get(url).status_code == 200
        time.sleep(0.35)
        gone = client.get(url)
        assert gone.status_code == 404 and gone.json() == {"detail": "File not found"}


def test_outputs_expire_after_the_first_download(client: httpx.Client) -> None:
    with FalFake(key=FAL_KEY, run_seconds=0.05, expire_on_download=True) as fal:
        url = completed_video_url(client, fal)
        fal.inject("download", truncate=True)
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(url)  # a broken download does not count
        assert client.get(url).status_code == 200
        assert client.get(url).status_code == 404


def test_outputs_can_be_overridden(fal: FalFake, client: httpx.Client) -> None:
    bad = corrupt_mp4()
    fal.inject("result", output=bad)
    assert client.get(completed_video_url(client, fal)).content == bad
    fal.output_override = lambda payload: b"for " + str(payload["prompt"]).encode()
    assert client.get(completed_video_url(client, fal, prompt="z")).content == b"for z"
    with pytest.raises(ValueError, match="job fault"):
        fal.inject("status", completed_error="runner_disconnected")
