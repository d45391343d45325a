"""Crash safety: a build killed with SIGKILL loses no finished work and leaves no partial file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from aivpbuild.api import Project
from aivpbuild.media.probe import probe
from aivpbuild.providers.local import LocalProvider
from tests.helpers import manifest, write_project

REPO = Path(__file__).resolve().parents[1]


def lock_entries(root: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((root / "aivp.lock").read_text())
    except FileNotFoundError:
        return {}
    return (data or {}).get("targets") or {}


@pytest.mark.parametrize("kill_after", [1, 3])
def test_sigkill_mid_build_then_rebuild_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_after: int
) -> None:
    clips = {f"s{i}": {"prompt": f"shot number {i}", "camera": "slow push-in"} for i in range(6)}
    data = manifest(clips)
    data["defaults"].update(resolution="320x180", duration=2, fps=24)
    root = write_project(tmp_path / "p", data)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "aivpbuild", "-C", str(root), "-j", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(lock_entries(root)) < kill_after and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = lock_entries(root)  # parseable after the kill
    assert len(finished) >= kill_after, "the build ended before the kill point"
    assert len(finished) < len(clips), "the build finished before it could be killed"
    clip_dir = root / "video/clips"
    for path in clip_dir.iterdir():
        assert not path.name.startswith("."), f"partial file left behind: {path.name}"
        info = probe(path)  # every file there is a complete, readable clip
        assert info.frames == 48
    made: list[str] = []
    original = LocalProvider.submit

    async def counting(self: LocalProvider, endpoint: str, payload: Any) -> Any:
        made.append(payload["clip_id"])
        return await original(self, endpoint, payload)

    monkeypatch.setattr(LocalProvider, "submit", counting)
    result = Project.load(root).build((), jobs=1)
    assert result.failed == []
    done_before = {t.split(":", 1)[1] for t in finished}
    restored = {t.split(":", 1)[1] for t in result.by_action("restored")}
    assert set(made) == set(clips) - done_before - restored
    assert not set(made) & done_before, "a finished target was generated twice"
    assert len(lock_entries(root)) == len(clips)


def test_ctrl_c_stops_cleanly_and_the_next_run_finishes(tmp_path: Path) -> None:
    clips = {f"s{i}": {"prompt": f"shot number {i}", "camera": "pan left"} for i in range(5)}
    data = manifest(clips)
    data["defaults"].update(resolution="320x180", duration=2, fps=24)
    root = write_project(tmp_path / "p", data)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "aivpbuild", "-C", str(root), "-j", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not lock_entries(root) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in out and "Traceback" not in err
    finished = lock_entries(root)
    assert 1 <= len(finished) < len(clips)
    assert not [p for p in (root / "video/clips").iterdir() if p.name.startswith(".")]
    result = Project.load(root).build((), jobs=1)
    assert result.failed == [] and len(lock_entries(root)) == len(clips)
    assert {t.split(":", 1)[1] for t in result.by_action("generated")}.isdisjoint(
        {t.split(":", 1)[1] for t in finished})
