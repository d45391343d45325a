"""The ComfyUI provider against fake ComfyUI servers on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.comfyui import ComfyUIFake
from tests.helpers import keyframe, run_cli, write_project

WORKFLOW = {
    "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{ prompt }}", "clip": ["4", 1]}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "{{ image }}"}},
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{ seed }}", "steps": 20}},
    "5": {"class_type": "EmptyLatentVideo", "inputs": {"width": "{{ width }}", "height": "{{ height }}",
                                                       "length": "{{ frames }}"}},
    "9": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": "{{ fps }}", "images": ["8", 0]}},
}


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ComfyUIFake]]:
    with ComfyUIFake() as one, ComfyUIFake() as two:
        monkeypatch.setenv("AIVP_COMFYUI_SERVERS", f"{one.base},{two.base}")
        yield [one, two]


def project(root: Path, clips: dict[str, Any] | None = None, workflow: dict[str, Any] | None = None) -> Path:
    data = {
        "version": 1, "name": "c",
        "defaults": {"provider": "comfyui", "model": "wan-local", "resolution": "320x180", "duration": 1,
                     "fps": 12, "seed": 9},
        "models": {"wan-local": {"provider": "comfyui", "workflow": "workflows/wan_api.json", "price_per_second": 0}},
        "providers": {"comfyui": {"poll_interval": 0.02}},
        "clips": clips or {"t2v": {"prompt": 'She says "hi" \\ {not a template}'},
                           "i2v": {"prompt": "a door opens", "image": "image/frames/k.png"}},
    }
    root = write_project(root, data, {"workflows/wan_api.json": json.dumps(workflow or WORKFLOW, indent=1)})
    keyframe(root / "image/frames/k.png")
    return root


def test_workflow_placeholders_upload_and_pool(tmp_path: Path, servers: list[ComfyUIFake]) -> None:
    root = project(tmp_path / "p")
    result = run_cli("-C", str(root), "-j", "2")
    assert result.code == 0, result.out + result.err
    ledger = servers[0].ledger + servers[1].ledger
    assert len(ledger) == 2 and len(servers[0].ledger) == len(servers[1].ledger) == 1  # spread over the pool
    t2v = next(e["workflow"] for e in ledger if e["workflow"]["1"]["inputs"]["text"].startswith("She"))
    assert t2v["1"]["inputs"]["text"] == 'She says "hi" \\ {not a template}'  # quotes survive
    assert t2v["3"]["inputs"]["seed"] == 9 and t2v["5"]["inputs"] == {"width": 320, "height": 180, "length": 12}
    i2v = next(e["workflow"] for e in ledger if e["workflow"]["1"]["inputs"]["text"] == "a door opens")
    name = i2v["2"]["inputs"]["image"]
    assert name.startswith("k-") and name.endswith(".png") and any(name in s.uploads for s in servers)
    assert (root / "video/clips/i2v.mp4").is_file()
    assert run_cli("-C", str(root)).code == 0 and len(servers[0].ledger + servers[1].ledger) == 2


def test_a_dead_server_is_skipped(tmp_path: Path, servers: list[ComfyUIFake]) -> None:
    servers[0].stop()
    root = project(tmp_path / "p", {f"s{i}": {"prompt": f"shot {i}"} for i in range(3)})
    result = run_cli("-C", str(root))
    assert result.code == 0, result.out
    assert len(servers[1].ledger) == 3


def test_node_errors_and_execution_errors_are_clear_failures(tmp_path: Path, servers: list[ComfyUIFake]) -> None:
    broken = {**WORKFLOW, "7": {"class_type": "BrokenNode", "inputs": {}}}
    root = project(tmp_path / "p", {"a": {"prompt": "x"}}, workflow=broken)
    result = run_cli("-C", str(root))
    assert result.code == 1 and "node 7 (BrokenNode): Node class does not exist" in result.out
    servers[0].fail_next = servers[1].fail_next = 1
    root2 = project(tmp_path / "q", {"b": {"prompt": "y"}})
    result = run_cli("-C", str(root2))
    assert result.code == 1 and "CUDA out of memory" in result.out
