"""The fake Replicate API: both create forms, polling, cancel, files, problem+json errors."""

from __future__ import annotations

import io
import time
from typing import Any

import av
import httpx
import pytest

from tests.fakes.replicate import ReplicateFake
from tests.fakes_tests.conftest import REPLICATE_TOKEN, wait_for

AUTH = {"Authorization": f"Bearer {REPLICATE_TOKEN}"}
TINY = {"prompt": "a door opens", "resolution": "144p", "aspect_ratio": "16:9", "duration": 1}
KEYS = {
    "id",
    "model",
    "version",
    "input",
    "logs",
    "output",
    "data_removed",
    "error",
    "status",
    "source",
    "created_at",
    "started_at",
    "completed_at",
    "metrics",
    "urls",
}


def create(
    client: httpx.Client,
    fake: ReplicateFake,
    body: dict[str, Any] | None = None,
    model: str | None = "acme/wan-video",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    url = f"{fake.base_url}/models/{model}/predictions" if model else f"{fake.base_url}/predictions"
    return client.post(
        url, json={"input": TINY} if body is None else body, headers={**AUTH, **(headers or {})}
    )


def poll(client: httpx.Client, prediction: dict[str, Any]) -> list[dict[str, Any]]:
    answers = wait_for(
        lambda: client.get(prediction["urls"]["get"], headers=AUTH).json(),
        lambda p: p["status"] in ("succeeded", "failed", "canceled"),
    )
    return answers


def assert_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert (
        body["status"] == status
        and isinstance(body["title"], str)
        and isinstance(body["detail"], str)
    )
    return body


def test_auth(replicate: ReplicateFake, client: httpx.Client) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Token {REPLICATE_TOKEN}"},
    ):
        answer = client.post(
            f"{replicate.base_url}/models/a/b/predictions", json={"input": TINY}, headers=headers
        )
        assert_problem(answer, 401)
    assert replicate.ledger == []


def test_model_form_create_poll_and_download(
    replicate: ReplicateFake, client: httpx.Client
) -> None:
    replicate.run_seconds = 0.5  # polls must see it processing even on a loaded machine
    answer = create(client, replicate)
    assert answer.status_code == 201
    prediction = answer.json()
    assert set(prediction) == KEYS and prediction["status"] == "starting"
    assert prediction["model"] == "acme/wan-video" and prediction["input"] == TINY
    assert prediction["urls"] == {
        "get": f"{replicate.base_url}/predictions/{prediction['id']}",
        "cancel": f"{replicate.base_url}/predictions/{prediction['id']}/cancel",
    }
    seen = poll(client, prediction)
    assert [p["status"] for p in seen].count("processing") >= 1
    assert next(p for p in seen if p["status"] == "processing")["logs"].startswith("step 1/2\n")
    done = seen[-1]
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["logs"] == "step 1/2\nstep 2/2\n" and done["metrics"]["predict_time"] > 0
    assert done["started_at"] and done["completed_at"] and done["created_at"].endswith("Z")
    (url,) = done["output"]
    download = client.get(url)
    assert download.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(download.content), "r") as container:
        context = container.streams.video[0].codec_context
        assert (context.width, context.height) == (256, 144)
    assert (
        replicate.ledger[0]["model"] == "acme/wan-video" and replicate.ledger[0]["id"] == done["id"]
    )


def test_output_as_a_single_url(client: httpx.Client) -> None:
    with ReplicateFake(
        token=REPLICATE_TOKEN, start_seconds=0, run_seconds=0.02, output_list=False
    ) as fake:
        done = poll(client, create(client, fake).json())[-1]
        assert isinstance(done["output"], str) and client.get(done["output"]).status_code == 200


def test_version_form(replicate: ReplicateFake, client: httpx.Client) -> None:
    version = "ab" * 32
    answer = create(client, replicate, {"version": version, "input": TINY}, model=None)
    assert answer.status_code == 201 and answer.json()["version"] == version
    assert replicate.ledger[0]["model"] is None and replicate.ledger[0]["version"] == version
    named = create(client, replicate, {"version": f"acme/wan:{version}", "input": TINY}, model=None)
    assert named.json()["model"] == "acme/wan"
    bad = assert_problem(
        create(client, replicate, {"version": "v1!", "input": TINY}, model=None), 422
    )
    assert bad["invalid_fields"][0]["field"] == "version"
    assert len(replicate.ledger) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": TINY, "speed": "fast"}, "(root)"),
        ({"inputs": TINY}, "(root)"),
        ({"input": "a door"}, "input"),
        ({"input": {**TINY, "prompt": ""}}, "input"),
        ({"input": {**TINY, "duration": -1}}, "input.duration"),
    ],
)
def test_422_with_invalid_fields(
    replicate: ReplicateFake, client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(create(client, replicate, body), 422)
    assert problem["title"] == "Input validation failed"
    assert any(f["field"] == field for f in problem["invalid_fields"])
    assert set(problem["invalid_fields"][0]) == {"type", "field", "description"}
    assert replicate.ledger == []


def test_prefer_wait_holds_the_answer_until_done(
    replicate: ReplicateFake, client: httpx.Client
) -> None:
    started = time.monotonic()
    prediction = create(client, replicate, headers={"Prefer": "wait=5"}).json()
    assert prediction["status"] == "succeeded" and prediction["output"]
    assert time.monotonic() - started < 2


def test_cancel(replicate: ReplicateFake, client: httpx.Client) -> None:
    prediction = create(client, replicate).json()
    canceled = client.post(prediction["urls"]["cancel"], headers=AUTH)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert canceled.json()["completed_at"]
    done = poll(client, create(client, replicate).json())[-1]
    after = client.post(done["urls"]["cancel"], headers=AUTH)
    assert after.status_code == 200 and after.json()["status"] == "succeeded"
    assert_problem(client.get(f"{replicate.base_url}/predictions/nope", headers=AUTH), 404)


def test_file_upload(replicate: ReplicateFake, client: httpx.Client) -> None:
    answer = client.post(
        f"{replicate.base_url}/files",
        headers=AUTH,
        files={"content": ("key.png", b"\x89PNG data", "image/png")},
    )
    assert answer.status_code == 201
    meta = answer.json()
    assert meta["name"] == "key.png" and meta["size"] == 9 and meta["content_type"] == "image/png"
    assert client.get(meta["urls"]["get"]).content == b"\x89PNG data"
    assert client.get(f"{replicate.base_url}/files/{meta['id']}", headers=AUTH).json() == meta
    assert (
        client.get(f"{replicate.base_url}/files/{meta['id']}/download", headers=AUTH).content
        == b"\x89PNG data"
    )
    assert_problem(client.get(f"{replicate.base_url}/files/{meta['id']}"), 401)
    assert_problem(
        client.post(
            f"{replicate.base_url}/files", headers=AUTH, files={"other": ("x", b"x", "text/plain")}
        ),
        400,
    )


def test_429_with_and_without_retry_after(replicate: ReplicateFake, client: httpx.Client) -> None:
    replicate.inject("create", status=429, retry_after=5)
    replicate.inject("create", status=429)
    first = assert_problem(create(client, replicate), 429)
    assert first["detail"] == "Request was throttled. Your rate limit resets in ~5s."
    second = create(client, replicate)
    assert "Retry-After" not in second.headers and assert_problem(second, 429)["detail"].startswith(
        "Request was throttled."
    )
    assert create(client, replicate).status_code == 201 and len(replicate.ledger) == 1


def test_the_built_in_rate_limit(client: httpx.Client) -> None:
    with ReplicateFake(token=REPLICATE_TOKEN, create_limit_per_minute=2) as fake:
        assert [create(client, fake).status_code for _ in range(3)] == [201, 201, 429]
        refused = create(client, fake)
        assert int(refused.headers["Retry-After"]) >= 59 and len(fake.ledger) == 2


def test_failed_predictions(replicate: ReplicateFake, client: httpx.Client) -> None:
    replicate.fail_next.append("CUDA out of memory")
    replicate.inject("get", completed_error="NSFW content detected")
    first, second = (poll(client, create(client, replicate).json())[-1] for _ in range(2))
    assert first["status"] == second["status"] == "failed" and first["output"] is None
    # an injected job fault goes first, then fail_next
    assert first["error"] == "NSFW content detected" and second["error"] == "CUDA out of memory"
    assert "CUDA out of memory" in second["logs"]


def test_5xx_and_resets(replicate: ReplicateFake, client: httpx.Client) -> None:
    prediction = create(client, replicate).json()
    replicate.inject("get", status=503)
    assert_problem(client.get(prediction["urls"]["get"], headers=AUTH), 503)
    replicate.inject("get", status=502, ingress=True)
    page = client.get(prediction["urls"]["get"], headers=AUTH)
    assert page.status_code == 502 and page.headers["Content-Type"] == "text/html"
    replicate.inject("create", reset=True, after=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        create(client, replicate, {"input": {**TINY, "prompt": "lost"}})
    assert replicate.billable_count()["lost"] == 1


def test_outputs_are_removed_after_a_while(client: httpx.Client) -> None:
    with ReplicateFake(
        token=REPLICATE_TOKEN, start_seconds=0, run_seconds=0.02, expire_after=0.2
    ) as fake:
        done = poll(client, create(client, fake).json())[-1]
        url = done["output"][0]
        assert client.get(url).status_code == 200
        time.sleep(0.25)
        assert client.get(url).status_code == 404
        removed = client.get(done["urls"]["get"], headers=AUTH).json()
        assert (
            removed["data_removed"] is True and removed["output"] is None and removed["input"] == {}
        )
