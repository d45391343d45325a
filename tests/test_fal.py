"""The fal provider end to end against a fake fal.ai on 127.0.0.1: uploads, queue, results,
the spend ledger, retries and failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aivpbuild.api import Project
from tests.fakes.fal import FalFake
from tests.helpers import keyframe, run_cli, write_project

KEY = "fal-secret-8d1f3c"
#: Follow jobs by polling (faults injected on status polls need it; the stream is the default).
POLLING = {"fal": {"poll_interval": 0.02, "status_stream": False}}


@pytest.fixture
def fal(monkeypatch: pytest.MonkeyPatch) -> Iterator[FalFake]:
    with FalFake(key=KEY) as fake:
        monkeypatch.setenv("AIVP_FAL_QUEUE_URL", fake.queue_url)
        monkeypatch.setenv("AIVP_FAL_REST_URL", fake.rest_url)
        monkeypatch.setenv("FAL_KEY", KEY)
        yield fake


def fal_project(root: Path, clips: dict[str, Any] | None = None, **top: Any) -> Path:
    data = {
        "version": 1, "name": "remote",
        "defaults": {"provider": "fal", "model": "fal-ai/bytedance/seedance/v1.5/pro",
                     "resolution": "480p", "duration": 4, "seed": 3},
        "providers": {"fal": {"poll_interval": 0.02}},
        "clips": clips or {
            "t2v": {"prompt": "A lighthouse in a storm"},
            "i2v": {"prompt": "The courier turns", "image": "image/frames/i2v.png"},
        },
        **top,
    }
    root = write_project(root, data)
    keyframe(root / "image/frames/i2v.png")
    return root


def test_t2v_and_i2v_build_once_with_upload_and_full_metadata(tmp_path: Path, fal: FalFake) -> None:
    root = fal_project(tmp_path / "p")
    result = run_cli("-C", str(root), "-j", "4")
    assert result.code == 0, result.err
    assert len(fal.ledger) == 2
    i2v = next(e for e in fal.ledger if "image_url" in e["input"])
    assert i2v["endpoint"] == "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
    assert i2v["input"]["image_url"].startswith(fal.cdn_url) and len(fal.uploads) == 1
    assert i2v["input"]["duration"] == "4" and i2v["input"]["resolution"] == "480p"
    lock = yaml.safe_load((root / "aivp.lock").read_text())["targets"]
    assert lock["clip:i2v"]["request_id"] == i2v["request_id"] and lock["clip:i2v"]["seed"] == 3
    log = json.loads((root / "video/log/i2v.json").read_text())
    assert log["request_id"] == i2v["request_id"] and log["video_url"].startswith(fal.cdn_url)
    assert log["mode"] == "I2V" and log["model"].endswith("image-to-video")
    assert log["cost_usd"] == pytest.approx(854 * 480 * 24 * 4 / 1024 * 2.4e-6, abs=1e-4)
    # nothing is paid twice: a second build, a profile-free rebuild after deleting outputs
    assert run_cli("-C", str(root)).code == 0
    (root / "video/clips/t2v.mp4").unlink()
    assert run_cli("-C", str(root)).code == 0
    assert len(fal.ledger) == 2
    report = json.loads(run_cli("cost", "-C", str(root), "--json").out)
    assert report["paid_jobs"] == 2 and report["total_usd"] == pytest.approx(2 * log["cost_usd"], abs=1e-3)
    assert report["saved_by_cache_usd"] == pytest.approx(log["cost_usd"], abs=1e-3)


def test_under_budget_builds_and_over_budget_submits_nothing(tmp_path: Path, fal: FalFake) -> None:
    root = fal_project(tmp_path / "p")
    assert run_cli("-C", str(root), "--max-cost", "0.1").code == 3
    assert fal.ledger == []
    assert run_cli("-C", str(root), "--max-cost", "1").code == 0
    assert len(fal.ledger) == 2


def test_declining_the_confirmation_submits_nothing(tmp_path: Path, fal: FalFake) -> None:
    root = fal_project(tmp_path / "p", budget={"confirm_usd": 0.05})
    asked: list[float] = []

    def no(total: float, _expensive: str) -> bool:
        asked.append(total)
        return False

    from aivpbuild.errors import BudgetError

    with pytest.raises(BudgetError, match="declined"):
        Project.load(root).build(confirm=no)
    assert asked and fal.ledger == []
    assert Project.load(root).build(confirm=lambda *_: True).failed == []
    assert len(fal.ledger) == 2


def test_retries_429_and_ingress_errors_but_not_422(tmp_path: Path, fal: FalFake) -> None:
    fal.inject("submit", status=429, headers={"Retry-After": "0"}, body={"detail": "slow down"}, times=2)
    fal.inject("status", status=503, body={"detail": "upstream"}, times=2)  # no x-fal-request-id: ingress
    fal.inject("download", truncate=True, times=1)
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}}, providers=POLLING)
    assert run_cli("-C", str(root)).code == 0
    assert len(fal.ledger) == 1
    fal.inject("submit", status=422, body={"detail": [{"loc": ["body", "duration"], "msg": "bad duration",
                                                       "type": "value_error"}]})
    root2 = fal_project(tmp_path / "q", clips={"b": {"prompt": "y"}})
    result = run_cli("-C", str(root2))
    assert result.code == 1 and "422" in result.out and "body.duration: bad duration" in result.out
    assert sum(1 for m, p in fal.requests if m == "POST" and p.endswith("text-to-video")) == 4


def test_completed_with_error_fails_the_target_and_is_recorded_as_billed(tmp_path: Path, fal: FalFake) -> None:
    fal.fail_next.append(("runner_disconnected", "the runner went away"))
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}, "b": {"prompt": "y"}})
    result = run_cli("-C", str(root), "-k", "-j", "1")
    assert result.code == 1
    assert "(runner_disconnected)" in result.out
    report = json.loads(run_cli("cost", "-C", str(root), "--json").out)
    assert report["paid_jobs"] == 2 and report["failed_but_billed"] == 1


def test_missing_key_is_a_clear_error(tmp_path: Path, fal: FalFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAL_KEY")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}})
    result = run_cli("-C", str(root))
    assert result.code == 2 and "no fal.ai key: set FAL_KEY" in result.err
    (root / ".env").write_text(f"FAL_KEY={KEY}\n")
    assert run_cli("-C", str(root)).code == 0


def test_the_key_appears_nowhere(tmp_path: Path, fal: FalFake) -> None:
    fal.fail_next.append(("request_timeout", f"echo {KEY}"))  # even a provider echoing it back
    root = fal_project(tmp_path / "p")
    result = run_cli("-C", str(root), "-k", "-v")
    assert KEY not in result.out + result.err
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_queue_position_and_logs_are_shown(tmp_path: Path, fal: FalFake) -> None:
    fal.queue_seconds, fal.run_seconds = 0.3, 0.3
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}})
    result = run_cli("-C", str(root))
    assert result.code == 0
    assert "queued a (position" in result.out and "a: loading model" in result.out


def test_app_level_5xx_and_timeouts(tmp_path: Path, fal: FalFake) -> None:
    # a 503 that reached the app (x-fal-request-id) is not an ingress error: not retried
    fal.inject("submit", status=503, headers={"x-fal-request-id": "r1", "X-Fal-Error-Type": "runner_disconnected"},
               body={"detail": "runner disconnected"})
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}})
    result = run_cli("-C", str(root))
    assert result.code == 1 and "503 (runner_disconnected)" in result.out
    # a status request that hangs past the client timeout is retried (a GET is safe to repeat)
    fal.inject("status", delay=1.0)
    root2 = fal_project(tmp_path / "q", clips={"b": {"prompt": "y"}},
                        providers={"fal": {**POLLING["fal"], "timeout": 0.4}})
    assert run_cli("-C", str(root2)).code == 0
    assert len(fal.billable_count()) == 1  # the 503 submit was never accepted


def test_caller_timeout_504_is_not_retried(tmp_path: Path, fal: FalFake) -> None:
    fal.inject("result", status=504, headers={"X-Fal-Request-Timeout-Type": "user", "x-fal-request-id": "r"},
               body={"detail": "request timed out"})
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}})
    result = run_cli("-C", str(root))
    assert result.code == 1 and "504" in result.out
    assert sum(1 for m, p in fal.requests if m == "GET" and "/requests/" in p and "/status" not in p) == 1


def test_each_job_is_followed_on_one_status_stream(tmp_path: Path, fal: FalFake) -> None:
    fal.queue_seconds, fal.run_seconds = 0.2, 0.2
    root = fal_project(tmp_path / "p", clips={f"c{i}": {"prompt": f"shot {i}"} for i in range(3)})
    result = run_cli("-C", str(root))
    assert result.code == 0, result.out
    assert (fal.hits("status_stream"), fal.hits("status")) == (3, 0)
    assert "queued c0 (position" in result.out and "c0: loading model" in result.out


def test_a_refused_status_stream_falls_back_to_polling(tmp_path: Path, fal: FalFake) -> None:
    fal.inject("status_stream", status=404, body={"detail": "Not Found"})
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}, "b": {"prompt": "y"}})
    assert run_cli("-C", str(root), "-j", "1").code == 0
    assert fal.hits("status_stream") == 1 and fal.hits("status") >= 2  # asked once, then polled
    assert len(fal.ledger) == 2


def test_a_status_stream_that_breaks_is_followed_by_polling(tmp_path: Path, fal: FalFake) -> None:
    fal.latency = 0.3
    fal.inject("status_stream", truncate=True)
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}})
    assert run_cli("-C", str(root)).code == 0
    assert fal.hits("status_stream") == 1 and fal.hits("status") >= 1 and len(fal.ledger) == 1


def test_an_expired_output_fails_clearly_without_resubmitting(tmp_path: Path, fal: FalFake) -> None:
    fal.expire_after = 0.0
    fal.inject("download", delay=0.2)  # the output expires while we are on our way to it
    root = fal_project(tmp_path / "p", clips={"a": {"prompt": "x"}})
    result = run_cli("-C", str(root))
    assert result.code == 1 and "gone from the provider" in result.out
    assert len(fal.ledger) == 1
