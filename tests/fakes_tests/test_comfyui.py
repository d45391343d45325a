"""The fake ComfyUI: prompt, history, view, upload, queue, interrupt; a pool with a dead server."""

from __future__ import annotations

import io
from typing import Any

import av
import httpx
import pytest

from tests.fakes.comfyui import ComfyUIFake, comfyui_pool
from tests.fakes_tests.conftest import wait_for


def workflow(
    save: str = "VHS_VideoCombine", text: str = "a door opens", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "5": {
            "class_type": "EmptyLatentVideo",
            "inputs": {"width": 96, "height": 64, "length": 12},
        },
        "9": {
            "class_type": save,
            "inputs": {
                "frame_rate": 12,
                "fps": 12,
                "images": ["8", 0],
                "filename_prefix": "clips/wan",
            },
        },
        **(extra or {}),
    }


def queue_prompt(
    client: httpx.Client,
    server: ComfyUIFake,
    flow: dict[str, Any] | None = None,
    prefix: str = "",
    **body: Any,
) -> httpx.Response:
    return client.post(
        f"{server.base}{prefix}/prompt",
        json={"prompt": flow or workflow(), "client_id": "c1", **body},
    )


def history(client: httpx.Client, server: ComfyUIFake, pid: str) -> dict[str, Any]:
    entries = wait_for(lambda: client.get(f"{server.base}/history/{pid}").json(), bool)
    entry: dict[str, Any] = entries[-1][pid]
    return entry


def view(client: httpx.Client, server: ComfyUIFake, item: dict[str, Any]) -> httpx.Response:
    params = {k: item[k] for k in ("filename", "subfolder", "type")}
    return client.get(f"{server.base}/view", params=params)


def shape(data: bytes) -> tuple[int, int, int]:
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, frames


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_prompt_history_view_for_videohelpersuite(
    comfy: ComfyUIFake, client: httpx.Client, prefix: str
) -> None:
    answer = queue_prompt(client, comfy, prefix=prefix)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    assert client.get(f"{comfy.base}{prefix}/history/{body['prompt_id']}").json() == {}  # running
    entry = history(client, comfy, body["prompt_id"])
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert entry["status"]["messages"][-1][0] == "execution_success"
    assert entry["prompt"][1] == body["prompt_id"] and entry["prompt"][4] == ["9"]
    (item,) = entry["outputs"]["9"]["gifs"]
    assert item["subfolder"] == "clips" and item["filename"].startswith("wan_")
    assert item["type"] == "output" and item["format"] == "video/h264-mp4"
    video = view(client, comfy, item)
    assert video.headers["Content-Type"] == "video/mp4" and shape(video.content) == (96, 64, 12)
    assert (
        comfy.ledger[0]["prompt_id"] == body["prompt_id"] and comfy.ledger[0]["client_id"] == "c1"
    )


def test_core_save_video_reports_animated_images(comfy: ComfyUIFake, client: httpx.Client) -> None:
    pid = queue_prompt(client, comfy, workflow("SaveVideo")).json()["prompt_id"]
    outputs = history(client, comfy, pid)["outputs"]["9"]
    assert outputs["animated"] == [True] and outputs["images"][0]["filename"].endswith("_.mp4")
    assert shape(view(client, comfy, outputs["images"][0]).content) == (96, 64, 12)


def test_a_client_chosen_prompt_id_and_numbers(comfy: ComfyUIFake, client: httpx.Client) -> None:
    first = queue_prompt(client, comfy, prompt_id="my-own-id").json()
    second = queue_prompt(client, comfy).json()
    assert first["prompt_id"] == "my-own-id" and second["number"] == first["number"] + 1
    all_entries = wait_for(
        lambda: client.get(f"{comfy.base}/history").json(), lambda h: len(h) == 2
    )
    assert list(all_entries[-1]) == ["my-own-id", second["prompt_id"]]
    assert list(client.get(f"{comfy.base}/history", params={"max_items": 1}).json()) == [
        second["prompt_id"]
    ]


def test_queue_runs_one_at_a_time_and_interrupt(client: httpx.Client) -> None:
    with ComfyUIFake(run_seconds=5) as comfy:
        ids = [queue_prompt(client, comfy, workflow(text=t)).json()["prompt_id"] for t in "abc"]
        queue = client.get(f"{comfy.base}/queue").json()
        assert [row[1] for row in queue["queue_running"]] == ids[:1]
        assert [row[1] for row in queue["queue_pending"]] == ids[1:]
        assert len(queue["queue_pending"][0]) == 5
        assert client.post(f"{comfy.base}/queue", json={"delete": [ids[2]]}).status_code == 200
        assert (
            client.post(f"{comfy.base}/interrupt", json={"prompt_id": "someone-else"}).status_code
            == 200
        )
        assert client.get(f"{comfy.base}/history/{ids[0]}").json() == {}  # not that one
        assert client.post(f"{comfy.base}/interrupt").status_code == 200
        entry = client.get(f"{comfy.base}/history/{ids[0]}").json()[ids[0]]
        assert entry["status"]["status_str"] == "error"
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"
        queue = client.get(f"{comfy.base}/queue").json()
        assert [row[1] for row in queue["queue_running"]] == [ids[1]] and queue[
            "queue_pending"
        ] == []
        assert client.get(f"{comfy.base}/prompt").json() == {"exec_info": {"queue_remaining": 1}}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({}, "no_prompt"),
        ({"prompt": {}}, "no_prompt"),
        ({"prompt": {"1": {"inputs": {}}}}, "invalid_prompt"),
        (
            {"prompt": {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}}}},
            "prompt_no_outputs",
        ),
    ],
)
def test_invalid_prompts(
    comfy: ComfyUIFake, client: httpx.Client, body: dict[str, Any], kind: str
) -> None:
    answer = client.post(f"{comfy.base}/prompt", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == kind and set(answer.json()["error"]) == {
        "type",
        "message",
        "details",
        "extra_info",
    }
    assert answer.json()["node_errors"] == {} and comfy.ledger == []


def test_node_errors(comfy: ComfyUIFake, client: httpx.Client) -> None:
    answer = queue_prompt(
        client, comfy, workflow(extra={"7": {"class_type": "BrokenNode", "inputs": {}}})
    )
    assert answer.status_code == 400
    error = answer.json()["node_errors"]["7"]
    assert (
        error["class_type"] == "BrokenNode"
        and "Node class does not exist" in error["errors"][0]["message"]
    )
    comfy.inject("prompt", status=400)  # a validation failure on the first node
    injected = queue_prompt(client, comfy).json()
    assert injected["error"]["type"] == "prompt_outputs_failed_validation"
    assert injected["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"
    assert comfy.ledger == []


def test_execution_errors(comfy: ComfyUIFake, client: httpx.Client) -> None:
    comfy.fail_next = 1
    comfy.inject("history", completed_error="mat1 and mat2 shapes cannot be multiplied")
    first, second = (queue_prompt(client, comfy).json()["prompt_id"] for _ in range(2))
    for pid, text in ((first, "mat1 and mat2"), (second, "CUDA out of memory")):
        status = history(client, comfy, pid)["status"]
        assert status["status_str"] == "error" and status["completed"] is False
        kind, info = status["messages"][-1]
        assert kind == "execution_error" and text in info["exception_message"]
        assert info["node_id"] == "1" and info["node_type"] == "CLIPTextEncode"
    assert len(comfy.ledger) == 2


def test_upload_image_names(comfy: ComfyUIFake, client: httpx.Client) -> None:
    def upload(data: bytes, **fields: str) -> dict[str, Any]:
        answer = client.post(
            f"{comfy.base}/upload/image", files={"image": ("k.png", data, "image/png")}, data=fields
        )
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    assert upload(b"one") == {"name": "k.png", "subfolder": "", "type": "input"}
    assert upload(b"one")["name"] == "k.png"  # the same bytes: the same name
    assert upload(b"two")["name"] == "k (1).png"  # other bytes never overwrite by default
    assert upload(b"three", overwrite="true")["name"] == "k.png"
    assert upload(b"four", subfolder="refs") == {
        "name": "k.png",
        "subfolder": "refs",
        "type": "input",
    }
    assert comfy.uploads == {"k.png": b"three", "k (1).png": b"two", "refs/k.png": b"four"}
    viewed = client.get(f"{comfy.base}/view", params={"filename": "k.png", "type": "input"})
    assert viewed.content == b"three"
    assert (
        client.post(
            f"{comfy.base}/upload/image",
            data={"type": "input"},
            files={"other": ("x", b"x", "text/plain")},
        ).status_code
        == 400
    )


def test_view_errors(comfy: ComfyUIFake, client: httpx.Client) -> None:
    assert client.get(f"{comfy.base}/view", params={"filename": "nope.mp4"}).status_code == 404
    assert client.get(f"{comfy.base}/view", params={"filename": "../etc/passwd"}).status_code == 400
    assert client.get(f"{comfy.base}/view").status_code == 400


def test_system_stats_and_faults(comfy: ComfyUIFake, client: httpx.Client) -> None:
    assert client.get(f"{comfy.base}/system_stats").json()["devices"][0]["type"] == "cuda"
    comfy.inject("history", status=500)
    assert client.get(f"{comfy.base}/history/x").status_code == 500
    comfy.inject("prompt", reset=True, after=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        queue_prompt(client, comfy)
    assert len(comfy.ledger) == 1  # queued, though the answer was lost


def test_a_pool_with_a_dead_server(client: httpx.Client) -> None:
    with comfyui_pool(2, run_seconds=0.02) as (dead, live):
        dead.stop()
        with pytest.raises(httpx.ConnectError):
            queue_prompt(client, dead)
        pid = queue_prompt(client, live).json()["prompt_id"]
        assert history(client, live, pid)["status"]["status_str"] == "success"
        assert dead.ledger == [] and len(live.ledger) == 1
        assert live.billable_count() == {"a door opens": 1}
