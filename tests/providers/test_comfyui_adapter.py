"""The ComfyUI adapter: quote-safe placeholder rendering in the sandbox, workflow paths kept
inside the project, uploads, the server pool (least loaded, dead servers skipped), node
errors, history/queue polling, outputs and cancel — against scripted HTTP."""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from aivpbuild.errors import ProviderError, SubmitUncertain
from aivpbuild.providers.base import (
    Completed,
    Failed,
    GenerationRequest,
    JobHandle,
    Queued,
    Running,
)
from aivpbuild.providers.comfyui import (
    DEAD_SECONDS,
    ComfyUIProvider,
    pick_output,
    render_workflow,
    upload_name,
)
from aivpbuild.providers.http import RetryPolicy
from aivpbuild.providers.settings import ComfyUISettings
from tests.providers.helpers import Reply, Script, Sleeps, run

S1, S2 = "http://c1.test:8188", "http://c2.test:8188"
POLICY = RetryPolicy(attempts=3, download_attempts=2)

TEMPLATE = """{
  "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{ prompt }}", "clip": ["4", 1]}},
  "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "cinematic, {{ prompt }}, 35mm"}},
  "3": {"class_type": "KSampler",
        "inputs": {"seed": {{ seed }}, "steps": 20, "note": "\\"{{ seed }}\\""}},
  "4": {"class_type": "LoadImage", "inputs": {"image": "{{ image }}"}},
  "5": {"class_type": "EmptyLatentVideo",
        "inputs": {"width": "{{ width }}", "height": {{ height }}, "length": "{{ frames }}",
                   "fps": {{ fps }}, "seconds": "{{ duration }}"}},
  "9": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": "{{ fps }}", "images": ["8", 0]}}
}"""
VALUES = {
    "prompt": 'She says "run" \\ now {{ not a tag }}\nthen — café 東京',
    "seed": 9,
    "width": 320,
    "height": 180,
    "frames": 12,
    "fps": 12.0,
    "duration": 1,
    "image": None,
    "end_image": None,
}


# ------------------------------------------------------------------ rendering
def test_placeholders_are_written_as_json_whatever_the_prompt_holds() -> None:
    workflow = render_workflow(TEMPLATE, VALUES, source="wf.json")
    assert workflow["1"]["inputs"] == {"text": VALUES["prompt"], "clip": ["4", 1]}
    assert workflow["2"]["inputs"]["text"] == f"cinematic, {VALUES['prompt']}, 35mm"
    assert workflow["3"]["inputs"] == {"seed": 9, "steps": 20, "note": '"9"'}
    assert workflow["4"]["inputs"]["image"] is None
    assert workflow["5"]["inputs"] == {
        "width": 320,
        "height": 180,
        "length": 12,
        "fps": 12.0,
        "seconds": 1,
    }
    assert workflow["9"]["inputs"]["frame_rate"] == 12.0


def test_jinja_blocks_and_filters_still_work() -> None:
    text = (
        '{"1": {"class_type": "LoadImage", "inputs": {"image": '
        '{% if image %}"{{ image }}"{% else %}"blank.png"{% endif %}, '
        '"label": "{{ prompt | upper }}", "n": {{ frames * 2 }}}}}'
    )
    first = render_workflow(text, {**VALUES, "image": "k-1.png", "prompt": 'a "b"'}, source="w")
    assert first["1"]["inputs"] == {"image": "k-1.png", "label": 'A "B"', "n": 24}
    assert render_workflow(text, VALUES, source="w")["1"]["inputs"]["image"] == "blank.png"


def test_a_missing_value_is_named() -> None:
    values = {k: v for k, v in VALUES.items() if k != "seed"}
    with pytest.raises(ProviderError, match="'seed' is undefined") as info:
        render_workflow(TEMPLATE, values, source="workflows/wan.json")
    assert "workflows/wan.json" in str(info.value) and "placeholders:" in str(info.value)


def test_the_sandbox_refuses_to_reach_python_internals() -> None:
    escape = "{{ prompt.__class__.__mro__[1].__subclasses__() }}"
    text = '{"1": {"class_type": "X", "inputs": {"v": "' + escape + '"}}}'
    with pytest.raises(ProviderError, match="ComfyUI workflow w"):
        render_workflow(text, VALUES, source="w")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"nodes": [], "links": []}', "UI format"),
        ('{"1": {"inputs": {}}}', "node 1 has no class_type"),
        ("[1, 2]", "not an object of nodes"),
        ('{"1": {"class_type": "X", "inputs": {"s": {{ seed }}}', "not valid JSON"),
        ('{"1": {"class_type": "X",\n "inputs": {"s": {% if %}1{% endif %}}}}', "line 2"),
    ],
)
def test_broken_workflows_are_explained(text: str, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        render_workflow(text, VALUES, source="w")


# ------------------------------------------------------------------ the provider
def project(tmp_path: Path, template: str = TEMPLATE) -> Path:
    (tmp_path / "workflows").mkdir(parents=True, exist_ok=True)
    (tmp_path / "workflows" / "wan.json").write_text(template, "utf-8")
    (tmp_path / "frames").mkdir(exist_ok=True)
    (tmp_path / "frames" / "k.png").write_bytes(b"\x89PNG key one")
    return tmp_path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(
    script: Script, root: Path, clock: Clock | None = None, servers: tuple[str, ...] = (S1, S2)
) -> ComfyUIProvider:
    return ComfyUIProvider(
        settings=ComfyUISettings(servers=list(servers)),
        root=root,
        client=script.client(),
        sleep=Sleeps(),
        policy=POLICY,
        clock=clock or Clock(),
    )


def payload(**extra: Any) -> dict[str, Any]:
    return {
        "workflow": "workflows/wan.json",
        "prompt": 'a "quoted" door',
        "seed": 9,
        "width": 320,
        "height": 180,
        "fps": 12.0,
        "frames": 12,
        "duration": 1,
        **extra,
    }


def accepted(pid: str) -> Reply:
    return Reply(200, {"prompt_id": pid, "number": 1, "node_errors": {}})


def prompt_of(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


def test_build_input_puts_keyframes_under_image_and_end_image(tmp_path: Path) -> None:
    start, end = tmp_path / "a.png", tmp_path / "b.png"
    request = GenerationRequest(
        target="clip:a",
        provider="comfyui",
        model="wan",
        endpoint="comfyui/wan",
        mode="i2v",
        prompt="p",
        duration=1,
        resolution="320x180",
        width=320,
        height=180,
        aspect_ratio="16:9",
        fps=Fraction(12),
        audio=False,
        image=start,
        end_image=end,
        payload=payload(),
        file_inputs={"image": start, "end_image": end},
    )
    built = provider(Script(), tmp_path).build_input(request, {start: str(start), end: str(end)})
    assert built["image"] == str(start) and built["end_image"] == str(end)
    assert built["workflow"] == "workflows/wan.json"


def test_submit_uploads_the_keyframe_and_posts_the_filled_workflow(tmp_path: Path) -> None:
    root = project(tmp_path)
    key = root / "frames" / "k.png"
    name = upload_name(key, key.read_bytes())
    script = Script().on(
        "POST", f"{S1}/upload/image", Reply(200, {"name": name, "subfolder": "", "type": "input"})
    )
    script.on("POST", f"{S1}/prompt", accepted("pid-1"))
    job = run(provider(script, root).submit("comfyui/wan", payload(image=str(key))))
    assert (
        dict(job.urls) == {"server": S1, "output_nodes": "9", "seed": "9"}
        and job.request_id == "pid-1"
    )
    assert JobHandle.from_json(json.loads(json.dumps(job.to_json()))) == job
    upload = script.sent("POST", f"{S1}/upload/image")[0]
    head = f"Content-Type: {upload.headers['content-type']}\r\n\r\n".encode()
    parts = {
        p.get_param("name", header="content-disposition"): p
        for p in BytesParser(policy=HTTP).parsebytes(head + upload.content).iter_parts()
    }
    assert parts["image"].get_filename() == name and name.startswith("k-") and name.endswith(".png")
    assert parts["image"].get_payload(decode=True) == key.read_bytes()
    assert parts["type"].get_content() == "input" and parts["overwrite"].get_content() == "true"
    body = prompt_of(script.sent("POST", f"{S1}/prompt")[0])
    assert body["client_id"] and body["prompt"]["4"]["inputs"]["image"] == name
    assert body["prompt"]["1"]["inputs"]["text"] == 'a "quoted" door'


def test_two_keyframes_with_one_name_never_collide(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "start.png", tmp_path / "b" / "start.png"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert upload_name(a, b"one") != upload_name(b, b"two")
    assert upload_name(a, b"one") == upload_name(b, b"one")  # same content: same name


def test_jobs_spread_over_the_pool_least_loaded_first(tmp_path: Path) -> None:
    root = project(tmp_path)
    script = Script().on("POST", f"{S1}/prompt", accepted("a"), accepted("c"))
    script.on("POST", f"{S2}/prompt", accepted("b"))
    script.on(
        "GET",
        f"{S1}/history/a",
        Reply(
            200,
            {
                "a": {
                    "outputs": {},
                    "status": {"status_str": "success", "completed": True, "messages": []},
                }
            },
        ),
    )
    comfy = provider(script, root)
    first = run(comfy.submit("comfyui/wan", payload()))
    second = run(comfy.submit("comfyui/wan", payload()))
    assert (first.urls["server"], second.urls["server"]) == (S1, S2)
    assert (comfy.load(S1), comfy.load(S2)) == (1, 1)
    assert isinstance(run(comfy.poll(first)), Completed)
    assert (comfy.load(S1), comfy.load(S2)) == (0, 1)
    assert run(comfy.submit("comfyui/wan", payload())).urls["server"] == S1


def test_a_dead_server_is_skipped_for_a_while(tmp_path: Path) -> None:
    root = project(tmp_path)
    clock = Clock()
    script = Script().on("POST", f"{S1}/prompt", Reply(error=httpx.ConnectError), accepted("late"))
    script.on("POST", f"{S2}/prompt", accepted("b1"), accepted("b2"))
    comfy = provider(script, root, clock)
    assert run(comfy.submit("comfyui/wan", payload())).urls["server"] == S2
    assert run(comfy.submit("comfyui/wan", payload())).urls["server"] == S2  # S1 not even asked
    assert script.count("POST", f"{S1}/prompt") == 1 and comfy.load(S1) == 0
    clock.now += DEAD_SECONDS + 1
    assert run(comfy.submit("comfyui/wan", payload())).urls["server"] == S1  # back in the pool


def test_a_server_unreachable_during_upload_is_skipped(tmp_path: Path) -> None:
    root = project(tmp_path)
    key = root / "frames" / "k.png"
    script = Script().on("POST", f"{S1}/upload/image", Reply(error=httpx.ConnectTimeout))
    script.on(
        "POST",
        f"{S2}/upload/image",
        Reply(200, {"name": "k.png", "subfolder": "in", "type": "input"}),
    )
    script.on("POST", f"{S2}/prompt", accepted("b"))
    job = run(provider(script, root).submit("comfyui/wan", payload(image=str(key))))
    assert job.urls["server"] == S2 and script.count("POST", f"{S1}/prompt") == 0
    assert (
        prompt_of(script.sent("POST", f"{S2}/prompt")[0])["prompt"]["4"]["inputs"]["image"]
        == "in/k.png"
    )


def test_no_live_server_is_a_retryable_failure(tmp_path: Path) -> None:
    root = project(tmp_path)
    script = Script().on("POST", f"{S1}/prompt", Reply(error=httpx.ConnectError))
    script.on("POST", f"{S2}/prompt", Reply(error=httpx.ConnectError))
    with pytest.raises(ProviderError, match="no ComfyUI server could be reached") as info:
        run(provider(script, root).submit("comfyui/wan", payload()))
    assert info.value.retryable and S1 in str(info.value) and S2 in str(info.value)


def test_a_connection_broken_after_the_prompt_was_sent_is_uncertain(tmp_path: Path) -> None:
    root = project(tmp_path)
    script = Script().on("POST", f"{S1}/prompt", Reply(error=httpx.ReadTimeout))
    script.on("POST", f"{S2}/prompt", accepted("b"))
    comfy = provider(script, root)
    with pytest.raises(SubmitUncertain, match="may be running"):
        run(comfy.submit("comfyui/wan", payload()))
    assert script.count("POST", f"{S2}/prompt") == 0 and comfy.load(S1) == 0


def test_node_errors_name_each_node(tmp_path: Path) -> None:
    root = project(tmp_path)
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
        },
        "node_errors": {
            "7": {
                "errors": [
                    {
                        "type": "invalid",
                        "message": "Node class does not exist",
                        "details": "BrokenNode",
                    }
                ],
                "dependent_outputs": ["9"],
                "class_type": "BrokenNode",
            },
            "3": {
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "sampler_name: 'fast' not in [...]",
                    }
                ],
                "class_type": "KSampler",
            },
        },
    }
    script = Script().on("POST", f"{S1}/prompt", Reply(400, body))
    comfy = provider(script, root)
    with pytest.raises(ProviderError) as info:
        run(comfy.submit("comfyui/wan", payload()))
    message = str(info.value)
    assert "Prompt outputs failed validation" in message and "workflows/wan.json" in message
    assert "node 7 (BrokenNode): Node class does not exist BrokenNode" in message
    assert "node 3 (KSampler): Value not in list sampler_name: 'fast'" in message
    assert comfy.load(S1) == 0 and script.count("POST", f"{S2}/prompt") == 0


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("../outside.json", "outside the project"),
        ("/etc/passwd", "outside the project"),
        ("workflows/missing.json", "does not exist"),
        ("", "no workflow file"),
    ],
)
def test_workflow_paths_stay_inside_the_project(tmp_path: Path, rel: str, message: str) -> None:
    root = project(tmp_path / "p")
    (tmp_path / "outside.json").write_text(TEMPLATE)
    script = Script()
    with pytest.raises(ProviderError, match=message):
        run(provider(script, root).submit("comfyui/wan", payload(workflow=rel)))
    assert script.requests == []  # refused before any traffic


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (tmp_path / "secret.json").write_text(TEMPLATE)
    (root / "workflows" / "link.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(ProviderError, match="outside the project"):
        run(provider(Script(), root).submit("comfyui/wan", payload(workflow="workflows/link.json")))


# ------------------------------------------------------------------ polling and results
def job(pid: str = "pid", server: str = S1, nodes: str = "9") -> JobHandle:
    return JobHandle(
        provider="comfyui",
        request_id=pid,
        endpoint="comfyui/wan",
        urls={"server": server, "output_nodes": nodes, "seed": "9"},
    )


def test_poll_maps_queue_running_success_and_error(tmp_path: Path) -> None:
    error_entry = {
        "pid": {
            "outputs": {},
            "status": {
                "status_str": "error",
                "completed": False,
                "messages": [
                    ["execution_start", {"prompt_id": "pid"}],
                    [
                        "execution_error",
                        {
                            "prompt_id": "pid",
                            "node_id": "3",
                            "node_type": "KSampler",
                            "exception_message": "CUDA out of memory\n",
                            "exception_type": "OOM",
                        },
                    ],
                ],
            },
        }
    }
    script = Script().on(
        "GET",
        f"{S1}/history/pid",
        Reply(200, {}),
        Reply(200, {}),
        Reply(
            200,
            {
                "pid": {
                    "outputs": {},
                    "status": {"status_str": "success", "completed": True, "messages": []},
                }
            },
        ),
        Reply(200, error_entry),
    )
    script.on(
        "GET",
        f"{S1}/queue",
        Reply(
            200,
            {
                "queue_running": [[1, "other", {}, {}, []]],
                "queue_pending": [
                    [9, "later", {}, {}, []],
                    [4, "pid", {}, {}, []],
                    [2, "first", {}, {}, []],
                ],
            },
        ),
        Reply(200, {"queue_running": [[4, "pid", {}, {}, []]], "queue_pending": []}),
    )
    comfy = provider(script, tmp_path)
    assert run(comfy.poll(job())) == Queued(
        position=1
    )  # pending sorted by number: first, pid, later
    assert run(comfy.poll(job())) == Running()
    assert run(comfy.poll(job())) == Completed()
    assert run(comfy.poll(job())) == Failed(
        error="node 3 (KSampler): CUDA out of memory", error_type="execution_error"
    )


def test_a_job_the_server_forgot_is_lost_not_polled_forever(tmp_path: Path) -> None:
    script = Script().on("GET", f"{S1}/history/pid", Reply(200, {}))
    script.on("GET", f"{S1}/queue", Reply(200, {"queue_running": [], "queue_pending": []}))
    status = run(provider(script, tmp_path).poll(job()))
    assert isinstance(status, Failed) and status.error_type == "lost"
    assert script.count("GET", f"{S1}/history/pid") == 2  # checked again after the queue


def test_poll_retries_a_flaky_server_then_fails_clearly(tmp_path: Path) -> None:
    script = Script().on(
        "GET",
        f"{S1}/history/pid",
        Reply(error=httpx.ConnectError),
        Reply(502),
        Reply(200, {"pid": {"status": {"status_str": "success", "completed": True}}}),
    )
    assert run(provider(script, tmp_path).poll(job())) == Completed()
    script = Script().on("GET", f"{S1}/history/pid", Reply(error=httpx.ConnectError))
    with pytest.raises(ProviderError, match="cannot reach ComfyUI"):
        run(provider(script, tmp_path).poll(job()))
    assert script.count("GET", f"{S1}/history/pid") == POLICY.attempts


def test_result_finds_the_video_under_gifs_or_animated_images(tmp_path: Path) -> None:
    outputs = {
        "8": {"images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]},
        "9": {
            "images": [{"filename": "clip 1.mp4", "subfolder": "runs/a&b", "type": "output"}],
            "animated": [True],
        },
    }
    script = Script().on(
        "GET",
        f"{S1}/history/pid",
        Reply(
            200,
            {"pid": {"outputs": outputs, "status": {"status_str": "success", "completed": True}}},
        ),
    )
    result = run(provider(script, tmp_path).result(job()))
    url = httpx.URL(result.video_url)
    assert str(url.copy_with(query=None)) == f"{S1}/view"
    assert dict(url.params) == {"filename": "clip 1.mp4", "subfolder": "runs/a&b", "type": "output"}
    assert result.seed == 9 and result.metadata["node"] == "9"
    gifs = {
        "3": {
            "gifs": [
                {
                    "filename": "AnimateDiff_0001.mp4",
                    "subfolder": "",
                    "type": "output",
                    "format": "video/h264-mp4",
                }
            ]
        }
    }
    assert pick_output(gifs, []) == ("3", gifs["3"]["gifs"][0])
    assert pick_output({"8": outputs["8"]}, ["9"]) is None  # a still image is not a video


def test_result_prefers_the_workflows_save_node(tmp_path: Path) -> None:
    outputs = {
        "4": {"gifs": [{"filename": "intermediate.mp4", "type": "temp"}]},
        "9": {"gifs": [{"filename": "final.mp4", "type": "output"}]},
    }
    assert pick_output(outputs, ["9"]) == ("9", outputs["9"]["gifs"][0])
    script = Script().on("GET", f"{S1}/history/pid", Reply(200, {"pid": {"outputs": {}}}))
    with pytest.raises(ProviderError, match="without a video output"):
        run(provider(script, tmp_path).result(job()))


def test_fetch_downloads_through_view(tmp_path: Path) -> None:
    view = f"{S1}/view?filename=a.mp4&subfolder=&type=output"
    script = Script().on("GET", f"{S1}/view", Reply(raw=b"mp4-bytes"))
    from aivpbuild.providers.base import JobResult

    run(provider(script, tmp_path).fetch(JobResult(video_url=view), tmp_path / "o.mp4"))
    assert (tmp_path / "o.mp4").read_bytes() == b"mp4-bytes"
    assert script.requests[0].url.params["filename"] == "a.mp4"


def test_cancel_deletes_a_pending_job_and_interrupts_a_running_one(tmp_path: Path) -> None:
    script = Script().on(
        "GET",
        f"{S1}/queue",
        Reply(200, {"queue_running": [], "queue_pending": [[2, "pid", {}, {}, []]]}),
        Reply(200, {"queue_running": [[2, "pid", {}, {}, []]], "queue_pending": []}),
        Reply(200, {"queue_running": [[3, "else", {}, {}, []]], "queue_pending": []}),
    )
    script.on("POST", f"{S1}/queue", Reply(200, {}))
    script.on("POST", f"{S1}/interrupt", Reply(200, {}))
    comfy = provider(script, tmp_path)
    run(comfy.cancel(job()))
    assert prompt_of(script.sent("POST", f"{S1}/queue")[0]) == {"delete": ["pid"]}
    run(comfy.cancel(job()))
    assert prompt_of(script.sent("POST", f"{S1}/interrupt")[0]) == {"prompt_id": "pid"}
    run(comfy.cancel(job()))  # finished already: someone else's job is never interrupted
    assert script.count("POST", f"{S1}/interrupt") == 1 and script.count("POST", f"{S1}/queue") == 1


def test_concurrency_defaults_to_one_job_per_server(tmp_path: Path) -> None:
    comfy = provider(Script(), tmp_path)
    assert (comfy.name, comfy.version, comfy.paid, comfy.default_concurrency) == (
        "comfyui",
        "1",
        True,
        2,
    )
    three = ComfyUIProvider(
        settings=ComfyUISettings(servers=[S1, S2, "http://c3.test"], concurrency=5), root=tmp_path
    )
    assert three.default_concurrency == 5
