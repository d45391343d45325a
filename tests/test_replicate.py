"""The Replicate provider against a fake Replicate on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.replicate import ReplicateFake
from tests.helpers import keyframe, run_cli, write_project

REPO = Path(__file__).resolve().parents[1]
TOKEN = "r8_secret_5a7c9e"


@pytest.fixture
def replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplicateFake]:
    with ReplicateFake(token=TOKEN) as fake:
        monkeypatch.setenv("AIVP_REPLICATE_BASE_URL", fake.base_url)
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        yield fake


def project(root: Path, clips: dict[str, Any] | None = None, endpoint: str = "acme/wan-video") -> Path:
    data = {
        "version": 1, "name": "r",
        "defaults": {"provider": "replicate", "model": "wan", "resolution": "480p", "duration": 2, "seed": 5},
        "models": {"wan": {"provider": "replicate", "endpoint": endpoint, "durations": [2, 4],
                           "price_per_second": 0.05}},
        "providers": {"replicate": {"poll_interval": 0.02}},
        "clips": clips or {"t2v": {"prompt": "waves"},
                           "i2v": {"prompt": "a door opens", "image": "image/frames/k.png"}},
    }
    root = write_project(root, data)
    keyframe(root / "image/frames/k.png")
    return root


def test_model_form_t2v_and_i2v_with_upload(tmp_path: Path, replicate: ReplicateFake) -> None:
    root = project(tmp_path / "p")
    result = run_cli("-C", str(root), "-j", "2")
    assert result.code == 0, result.out + result.err
    assert len(replicate.ledger) == 2 and all(e["model"] == "acme/wan-video" for e in replicate.ledger)
    i2v = next(e for e in replicate.ledger if "image" in e["input"])
    assert i2v["input"]["image"].startswith(replicate.base + "/files/")
    assert i2v["input"] == {"prompt": "a door opens", "duration": 2, "seed": 5, "resolution": "480p",
                            "aspect_ratio": "16:9", "image": i2v["input"]["image"]}
    log = json.loads((root / "video/log/i2v.json").read_text())
    assert log["request_id"] == i2v["id"] and log["cost_usd"] == pytest.approx(0.10)
    lock = yaml.safe_load((root / "aivp.lock").read_text())["targets"]
    assert lock["clip:t2v"]["provider"] == "replicate"
    assert run_cli("-C", str(root)).code == 0 and len(replicate.ledger) == 2


def test_version_form(tmp_path: Path, replicate: ReplicateFake) -> None:
    version = "a" * 64
    root = project(tmp_path / "p", {"a": {"prompt": "x"}}, endpoint=f"acme/wan-video:{version}")
    assert run_cli("-C", str(root)).code == 0
    assert replicate.ledger[0]["version"] == version and replicate.ledger[0]["model"] is None


def test_429_on_create_is_retried_but_a_reset_create_is_never_resubmitted(
    tmp_path: Path, replicate: ReplicateFake
) -> None:
    replicate.inject("create", status=429, headers={"Retry-After": "0"},
                     body={"title": "Request was throttled", "status": 429,
                           "detail": "Request was throttled. Your rate limit resets in ~30s."})
    replicate.inject("get", status=503, body={"title": "unavailable", "status": 503}, times=2)
    root = project(tmp_path / "p", {"a": {"prompt": "x"}})
    assert run_cli("-C", str(root)).code == 0
    assert len(replicate.ledger) == 1
    replicate.inject("create", reset=True)
    root2 = project(tmp_path / "q", {"b": {"prompt": "y"}})
    result = run_cli("-C", str(root2))
    assert result.code == 1 and "may have created (and will bill) the prediction" in result.out
    assert sum(1 for m, p in replicate.requests if m == "POST" and p.endswith("/predictions")) == 3
    assert "POSSIBLY SUBMITTED" in run_cli("jobs", "-C", str(root2)).out


def test_failed_prediction_and_422(tmp_path: Path, replicate: ReplicateFake) -> None:
    replicate.fail_next.append("CUDA out of memory")
    root = project(tmp_path / "p", {"a": {"prompt": "x"}})
    result = run_cli("-C", str(root))
    assert result.code == 1 and "CUDA out of memory" in result.out
    assert json.loads(run_cli("cost", "-C", str(root), "--json").out)["failed_but_billed"] == 1
    replicate.inject("create", status=422, headers={"Content-Type": "application/problem+json"},
                     body={"title": "Input validation failed", "status": 422, "detail": "duration must be <= 4"})
    root2 = project(tmp_path / "q", {"b": {"prompt": "y"}})
    result = run_cli("-C", str(root2))
    assert result.code == 1 and "duration must be <= 4" in result.out


@pytest.mark.parametrize("crash", ["after-journal:3", "while-polling:4", "mid-download:2"])
def test_sigkill_then_resume_pays_once(tmp_path: Path, replicate: ReplicateFake, crash: str) -> None:
    clips = {f"s{i:02d}": {"prompt": f"shot {i}"} for i in range(20)}
    root = project(tmp_path / "p", clips)
    (root / "project.aivp.yaml").write_text((root / "project.aivp.yaml").read_text()
                                            .replace("poll_interval: 0.02", "poll_interval: 0.02\n    concurrency: 1"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIVP_CRASH_AT": crash}
    killed = subprocess.run([sys.executable, "-m", "aivpbuild", "-C", str(root)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    env.pop("AIVP_CRASH_AT")
    again = subprocess.run([sys.executable, "-m", "aivpbuild", "-C", str(root)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(replicate.billable_count().values()) == {1} and len(replicate.ledger) == 20


def test_token_appears_nowhere(tmp_path: Path, replicate: ReplicateFake) -> None:
    replicate.fail_next.append(f"bad token {TOKEN}")
    root = project(tmp_path / "p")
    result = run_cli("-C", str(root), "-k", "-v")
    assert TOKEN not in result.out + result.err
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
