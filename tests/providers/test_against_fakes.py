"""The adapters end to end against the fake provider servers on 127.0.0.1 (real HTTP, real
small MP4s): upload, submit, wait with queue position and logs, result, streamed fetch, and a
few injected faults — with the fake's ledger counting billable submissions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import pytest

from aivpbuild.errors import SubmitUncertain
from aivpbuild.providers.base import Completed, Failed, JobStatus, Queued, Running
from aivpbuild.providers.comfyui import ComfyUIProvider
from aivpbuild.providers.fal import FalProvider
from aivpbuild.providers.replicate import ReplicateProvider
from aivpbuild.providers.settings import ComfyUISettings, FalSettings, ReplicateSettings
from tests.fakes.comfyui import ComfyUIFake
from tests.fakes.fal import FalFake
from tests.fakes.replicate import ReplicateFake
from tests.providers.helpers import Sleeps, run

FAL_KEY = "fal-e2e-key-0a1b2c3d"
REP_TOKEN = "r8_e2e_token_4e5f6a7b"
TINY = {"resolution": "144p", "aspect_ratio": "16:9", "duration": "1"}


def frames_and_size(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.codec_context.width, stream.codec_context.height


@pytest.mark.parametrize("stream", [True, False], ids=["status-stream", "polling"])
def test_fal_image_to_video_end_to_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    key = tmp_path / "key.png"
    key.write_bytes(b"\x89PNG\r\n\x1a\nkeyframe")
    seen: list[JobStatus] = []

    async def go(fake: FalFake) -> Path:
        fal = FalProvider(
            key=FAL_KEY,
            settings=FalSettings(
                queue_url=fake.queue_url,
                rest_url=fake.rest_url,
                poll_interval=0.02,
                status_stream=stream,
            ),
            sleep=Sleeps(),
        )
        try:
            url = await fal.upload(key)
            handle = await fal.submit(
                "fal-ai/bytedance/seedance/v1.5/pro/image-to-video",
                {"prompt": "the courier turns", "seed": 5, "image_url": url, **TINY},
            )
            outcome = await fal.wait(handle, seen.append)
            assert isinstance(outcome, Completed)
            result = await fal.result(handle)
            assert result.seed == 5 and result.metadata["content_type"] == "video/mp4"
            dest = tmp_path / "out.mp4"
            await fal.fetch(result, dest)
            assert dest.stat().st_size == result.metadata["file_size"]
            return dest
        finally:
            await fal.aclose()

    fake = FalFake(key=FAL_KEY, queue_seconds=0.15, run_seconds=0.15)
    with fake:
        fake.inject("status", status=429, headers={"Retry-After": "0"})
        fake.inject("download", truncate=True)
        dest = run(go(fake))
        polls = fake.hits("status")
        assert (fake.hits("status_stream"), polls) == ((1, 0) if stream else (0, polls))
        assert stream or polls >= 2  # the throttled poll was retried
        assert len(fake.ledger) == 1 and fake.ledger[0]["input"]["image_url"].startswith(
            fake.cdn_url
        )
        assert list(fake.uploads.values()) == [key.read_bytes()]
    assert frames_and_size(dest) == (24, 256, 144)
    assert any(isinstance(s, Queued) for s in seen) and any(
        isinstance(s, Running) and s.logs for s in seen
    )
    assert all(FAL_KEY not in r.getMessage() for r in caplog.records)  # httpx/httpcore debug too


def test_fal_failures_and_an_uncertain_submit() -> None:
    async def go(fake: FalFake) -> tuple[object, str]:
        fal = FalProvider(
            key=FAL_KEY,
            settings=FalSettings(
                queue_url=fake.queue_url, rest_url=fake.rest_url, poll_interval=0.02
            ),
            sleep=Sleeps(),
        )
        try:
            handle = await fal.submit(
                "fal-ai/kling-video/v2.1/pro/text-to-video", {"prompt": "x", **TINY}
            )
            failed = await fal.wait(handle)
            fake.inject("submit", reset=True)  # the next submit's connection breaks after sending
            try:
                await fal.submit(
                    "fal-ai/kling-video/v2.1/pro/text-to-video", {"prompt": "y", **TINY}
                )
            except SubmitUncertain as exc:
                return failed, str(exc)
            raise AssertionError("a reset submit must be uncertain")
        finally:
            await fal.aclose()

    fake = FalFake(key=FAL_KEY, run_seconds=0.05)
    with fake:
        fake.fail_next.append(("runner_disconnected", "Runner disconnected"))
        failed, uncertain = run(go(fake))
        assert failed == Failed(
            error="Runner disconnected", error_type="runner_disconnected", billed=True
        )
        assert "may have accepted" in uncertain and len(fake.ledger) == 1
        assert (
            sum(1 for m, p in fake.requests if m == "POST" and "kling" in p) == 2
        )  # never retried


def test_replicate_end_to_end_with_list_output(tmp_path: Path) -> None:
    key = tmp_path / "key.png"
    key.write_bytes(b"\x89PNG\r\n\x1a\nkeyframe")
    statuses: list[JobStatus] = []

    async def go(fake: ReplicateFake) -> Path:
        rep = ReplicateProvider(
            token=REP_TOKEN,
            settings=ReplicateSettings(base_url=fake.base_url, poll_interval=0.02),
            sleep=Sleeps(),
        )
        try:
            url = await rep.upload(key)
            handle = await rep.submit(
                "wan-video/wan-2.2-i2v-fast",
                {"prompt": "door opens", "image": url, "seed": 3, **TINY},
            )
            assert isinstance(await rep.wait(handle, statuses.append), Completed)
            result = await rep.result(handle)
            dest = tmp_path / "rep.mp4"
            await rep.fetch(result, dest)
            assert result.seed == 3 and result.video_url.endswith(".mp4")
            return dest
        finally:
            await rep.aclose()

    fake = ReplicateFake(token=REP_TOKEN, start_seconds=0.05, run_seconds=0.1)
    with fake:
        fake.inject(
            "create",
            status=429,
            headers={"Retry-After": "0"},
            body={"title": "Request was throttled", "status": 429, "detail": "slow down"},
        )
        fake.inject("get", status=503, body={"title": "unavailable", "status": 503})
        dest = run(go(fake))
        assert len(fake.ledger) == 1 and fake.ledger[0]["model"] == "wan-video/wan-2.2-i2v-fast"
    assert frames_and_size(dest)[1:] == (256, 144)
    assert any(isinstance(s, Running) and s.logs == ("step 1/2",) for s in statuses)


def test_comfyui_pool_end_to_end_skipping_a_dead_server(tmp_path: Path) -> None:
    workflow = {
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{ prompt }}"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "{{ image }}"}},
        "5": {
            "class_type": "EmptyLatentVideo",
            "inputs": {"width": "{{ width }}", "height": "{{ height }}", "length": "{{ frames }}"},
        },
        "9": {"class_type": "SaveVideo", "inputs": {"fps": "{{ fps }}", "images": ["8", 0]}},
    }
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "wan.json").write_text(json.dumps(workflow))
    key = tmp_path / "k.png"
    key.write_bytes(b"\x89PNG keyframe")
    payload = {
        "workflow": "workflows/wan.json",
        "prompt": 'say "hi"',
        "seed": 4,
        "width": 96,
        "height": 64,
        "fps": 12.0,
        "frames": 12,
        "duration": 1,
        "image": str(key),
    }

    async def go(servers: list[str], root: Path) -> list[Path]:
        comfy = ComfyUIProvider(
            settings=ComfyUISettings(servers=servers, poll_interval=0.02), root=root, sleep=Sleeps()
        )
        try:
            handles = [await comfy.submit("comfyui/wan", payload) for _ in range(2)]
            outputs = []
            for i, handle in enumerate(handles):
                assert isinstance(await comfy.wait(handle), Completed)
                dest = root / f"c{i}.mp4"
                await comfy.fetch(await comfy.result(handle), dest)
                outputs.append(dest)
            return outputs
        finally:
            await comfy.aclose()

    dead, live = ComfyUIFake(run_seconds=0.05), ComfyUIFake(run_seconds=0.05)
    with dead, live:
        dead.stop()
        outputs = run(go([dead.base, live.base], tmp_path))
        assert len(live.ledger) == 2 and dead.ledger == []
        assert live.ledger[0]["workflow"]["1"]["inputs"]["text"] == 'say "hi"'
        assert live.ledger[0]["workflow"]["2"]["inputs"]["image"] in live.uploads
        assert len(live.uploads) == 1  # uploaded once per server, not once per job
    for path in outputs:
        assert frames_and_size(path) == (12, 96, 64)
