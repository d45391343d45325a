"""The Replicate adapter against scripted HTTP: model and version forms, the create POST's
one safe retry, GET retries, status mapping, output shapes, problem+json errors, uploads."""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import httpx
import pytest

from aivpbuild.errors import ProviderError, SubmitUncertain
from aivpbuild.providers.base import Completed, Failed, JobHandle, JobResult, Queued, Running
from aivpbuild.providers.http import RetryPolicy
from aivpbuild.providers.replicate import ReplicateProvider, create_route, first_video
from aivpbuild.providers.settings import ReplicateSettings
from tests.providers.helpers import Reply, Script, Sleeps, run

TOKEN = "r8_token_1a2b3c4d5e6f"
B = "https://api.test/v1"
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
POLICY = RetryPolicy(attempts=4, download_attempts=3)
GET = f"{B}/predictions/p1"
PROBLEM = {"Content-Type": "application/problem+json"}


def provider(script: Script, sleeps: Sleeps | None = None) -> ReplicateProvider:
    return ReplicateProvider(
        token=TOKEN,
        settings=ReplicateSettings(base_url=B),
        client=script.client(),
        sleep=sleeps or Sleeps(),
        policy=POLICY,
    )


def prediction(status: str = "starting", **extra: object) -> dict[str, object]:
    return {
        "id": "p1",
        "status": status,
        "input": {"prompt": "x", "seed": 7},
        "logs": "",
        "output": None,
        "error": None,
        "started_at": None,
        "metrics": {},
        "urls": {"get": GET, "cancel": f"{GET}/cancel"},
        **extra,
    }


def handle() -> JobHandle:
    return JobHandle(
        provider="replicate",
        request_id="p1",
        endpoint="kwaivgi/kling-v2.1",
        urls={"get": GET, "cancel": f"{GET}/cancel"},
    )


# ------------------------------------------------------------------ create
@pytest.mark.parametrize(
    ("endpoint", "url", "fields"),
    [
        ("kwaivgi/kling-v2.1", f"{B}/models/kwaivgi/kling-v2.1/predictions", {}),
        ("wan-video/wan-2.2-i2v-fast", f"{B}/models/wan-video/wan-2.2-i2v-fast/predictions", {}),
        (VERSION, f"{B}/predictions", {"version": VERSION}),
        (f"alice/my-model:{VERSION}", f"{B}/predictions", {"version": VERSION}),
    ],
)
def test_model_and_version_forms(endpoint: str, url: str, fields: dict[str, str]) -> None:
    assert create_route(B, endpoint) == (url, fields)
    script = Script().on("POST", url, Reply(201, prediction()))
    job = run(provider(script).submit(endpoint, {"prompt": "x", "duration": 5}))
    sent = script.sent("POST", url)[0]
    assert json.loads(sent.content) == {**fields, "input": {"prompt": "x", "duration": 5}}
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert job.request_id == "p1" and dict(job.urls) == {"get": GET, "cancel": f"{GET}/cancel"}
    assert JobHandle.from_json(json.loads(json.dumps(job.to_json()))) == job


@pytest.mark.parametrize("endpoint", ["justaname", "a/b/c", "deadbeef", ":abc", "a/b:"])
def test_an_endpoint_in_neither_form_is_refused(endpoint: str) -> None:
    with pytest.raises(ProviderError, match="neither owner/name"):
        create_route(B, endpoint)


MODEL_URL = f"{B}/models/kwaivgi/kling-v2.1/predictions"


def test_a_429_on_create_is_the_one_retry_and_honours_retry_after() -> None:
    throttled = Reply(
        429,
        {
            "title": "Request was throttled",
            "status": 429,
            "detail": "Request was throttled. Your rate limit resets in ~30s.",
        },
        headers={"Retry-After": "30", **PROBLEM},
    )
    script = Script().on("POST", MODEL_URL, throttled, Reply(201, prediction()))
    sleeps = Sleeps()
    assert run(provider(script, sleeps).submit("kwaivgi/kling-v2.1", {})).request_id == "p1"
    assert script.count("POST", MODEL_URL) == 2 and sleeps.waits == [30.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_no_other_failed_create_is_retried(status: int) -> None:
    failed = Reply(
        status,
        {"title": "Service unavailable", "detail": "try later", "status": status},
        headers=PROBLEM,
    )
    script = Script().on("POST", MODEL_URL, failed, Reply(201, prediction()))
    with pytest.raises(ProviderError) as info:
        run(provider(script).submit("kwaivgi/kling-v2.1", {}))
    assert script.count("POST", MODEL_URL) == 1
    assert f"HTTP {status}: Service unavailable: try later" in str(info.value)


def test_a_reset_create_is_uncertain_but_a_refused_connection_is_retried() -> None:
    script = Script().on("POST", MODEL_URL, Reply(error=httpx.ReadError), Reply(201, prediction()))
    with pytest.raises(SubmitUncertain, match=r"Replicate may have created \(and will bill\)"):
        run(provider(script).submit("kwaivgi/kling-v2.1", {}))
    assert script.count("POST", MODEL_URL) == 1
    script = Script().on(
        "POST", MODEL_URL, Reply(error=httpx.ConnectError), Reply(201, prediction())
    )
    assert run(provider(script).submit("kwaivgi/kling-v2.1", {})).request_id == "p1"
    assert script.count("POST", MODEL_URL) == 2


def test_422_surfaces_title_detail_and_invalid_fields() -> None:
    body = {
        "title": "Input validation failed",
        "status": 422,
        "detail": "input is invalid",
        "invalid_fields": [
            {"type": "required", "field": "input.prompt", "description": "prompt is required"}
        ],
    }
    script = Script().on("POST", MODEL_URL, Reply(422, body, headers=PROBLEM))
    with pytest.raises(ProviderError) as info:
        run(provider(script).submit("kwaivgi/kling-v2.1", {}))
    message = str(info.value)
    assert "(422): Input validation failed: input is invalid" in message
    assert "input.prompt: prompt is required" in message and script.count("POST", MODEL_URL) == 1


def test_a_bad_token_says_which_variable_without_the_token() -> None:
    body = {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    script = Script().on("POST", MODEL_URL, Reply(401, body, headers=PROBLEM))
    with pytest.raises(ProviderError) as info:
        run(provider(script).submit("kwaivgi/kling-v2.1", {}))
    assert "REPLICATE_API_TOKEN" in str(info.value) and TOKEN not in str(info.value)


# ------------------------------------------------------------------ polling
@pytest.mark.parametrize("status", [429, 503, 504])
def test_gets_are_retried_on_429_503_504(status: int) -> None:
    script = Script().on(
        "GET",
        GET,
        Reply(status, headers={"Retry-After": "1"}),
        Reply(200, prediction("processing")),
    )
    sleeps = Sleeps()
    assert isinstance(run(provider(script, sleeps).poll(handle())), Running)
    assert script.count("GET", GET) == 2 and sleeps.waits == [1.0]


def test_a_get_failing_otherwise_is_not_retried() -> None:
    script = Script().on(
        "GET", GET, Reply(500, {"title": "Internal", "detail": "oops"}, headers=PROBLEM)
    )
    with pytest.raises(ProviderError, match="Internal: oops"):
        run(provider(script).poll(handle()))
    assert script.count("GET", GET) == 1


def test_every_status_maps_with_new_log_lines_only() -> None:
    script = Script().on(
        "GET",
        GET,
        Reply(200, prediction("starting")),
        Reply(200, prediction("processing", logs="step 1/3\n")),
        Reply(200, prediction("processing", logs="step 1/3\nstep 2/3\n")),
        Reply(200, prediction("succeeded", logs="step 1/3\nstep 2/3\nstep 3/3\n")),
        Reply(200, prediction("failed", error="CUDA out of memory", started_at="t")),
        Reply(200, prediction("canceled")),
        Reply(200, prediction("canceled", started_at="t")),
        Reply(200, prediction("weird")),
    )
    rep = provider(script)
    assert run(rep.poll(handle())) == Queued()
    assert run(rep.poll(handle())) == Running(logs=("step 1/3",))
    assert run(rep.poll(handle())) == Running(logs=("step 2/3",))
    assert run(rep.poll(handle())) == Completed(logs=("step 3/3",))
    assert run(rep.poll(handle())) == Failed(
        error="CUDA out of memory", error_type="failed", billed=True
    )
    assert run(rep.poll(handle())) == Failed(
        error="prediction canceled", error_type="canceled", billed=False
    )
    canceled_late = run(rep.poll(handle()))
    assert isinstance(canceled_late, Failed) and canceled_late.billed  # it ran before the cancel
    with pytest.raises(ProviderError, match="weird"):
        run(rep.poll(handle()))


# ------------------------------------------------------------------ output
@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("https://d.test/out.mp4", "https://d.test/out.mp4"),
        (
            ["https://d.test/poster.png", "https://d.test/a.mp4", "https://d.test/b.mp4"],
            "https://d.test/a.mp4",
        ),
        (["https://d.test/only"], "https://d.test/only"),
        (
            {"video": "https://d.test/v.webm?sig=1", "poster": "https://d.test/p.jpg"},
            "https://d.test/v.webm?sig=1",
        ),
        ([], None),
        (None, None),
        ("not a url", None),
    ],
)
def test_output_is_a_url_or_a_list_and_the_first_video_wins(
    output: object, expected: str | None
) -> None:
    assert first_video(output) == expected


def test_result_reads_the_output_seed_and_metrics() -> None:
    done = prediction(
        "succeeded",
        output=["https://d.test/a.mp4"],
        model="kwaivgi/kling-v2.1",
        metrics={"predict_time": 41.5},
    )
    script = Script().on("GET", GET, Reply(200, done))
    result = run(provider(script).result(handle()))
    assert result.video_url == "https://d.test/a.mp4" and result.seed == 7
    assert result.metadata["predict_time"] == 41.5 and result.metadata["request_id"] == "p1"
    script = Script().on("GET", GET, Reply(200, prediction("succeeded", output=None)))
    with pytest.raises(ProviderError, match="no output URL"):
        run(provider(script).result(handle()))


def test_fetch_downloads_without_the_token(tmp_path: Path) -> None:
    url = "https://d.test/a.mp4"
    script = Script().on("GET", url, Reply(error=httpx.ReadError), Reply(raw=b"video-bytes"))
    dest = tmp_path / "a.mp4"
    run(provider(script).fetch(JobResult(video_url=url), dest))
    assert dest.read_bytes() == b"video-bytes" and script.count("GET", url) == 2
    assert all("authorization" not in r.headers for r in script.requests)


def test_cancel_posts_and_ignores_a_vanished_prediction() -> None:
    script = Script().on(
        "POST",
        f"{GET}/cancel",
        Reply(200, prediction("canceled")),
        Reply(404, {"title": "Not found", "detail": "Prediction not found"}),
    )
    rep = provider(script)
    run(rep.cancel(handle()))
    run(rep.cancel(handle()))
    assert script.count("POST", f"{GET}/cancel") == 2


# ------------------------------------------------------------------ upload
def test_upload_is_multipart_with_a_content_part(tmp_path: Path) -> None:
    png = tmp_path / "key.png"
    png.write_bytes(b"\x89PNG-data")
    script = Script().on(
        "POST", f"{B}/files", Reply(201, {"id": "f1", "urls": {"get": f"{B}/files/f1"}})
    )
    assert run(provider(script).upload(png)) == f"{B}/files/f1"
    sent = script.requests[0]
    head = f"Content-Type: {sent.headers['content-type']}\r\n\r\n".encode()
    parts = list(BytesParser(policy=HTTP).parsebytes(head + sent.content).iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == ["content"]
    assert parts[0].get_filename() == "key.png" and parts[0].get_content_type() == "image/png"
    assert parts[0].get_payload(decode=True) == b"\x89PNG-data"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"


def test_class_attributes() -> None:
    rep = provider(Script())
    assert (rep.name, rep.version, rep.paid, rep.default_concurrency) == ("replicate", "1", True, 8)
    assert TOKEN not in repr(rep)
