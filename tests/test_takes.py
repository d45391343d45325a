"""Takes: every generation of a clip is kept; reject makes a new take with a new seed, pick
switches back for free, reroll makes one now, and `build --review --retry-failed` regenerates
only what failed review."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from aivpbuild.api import Project
from aivpbuild.outputs import parse_plan
from tests.fakes.fal import FalFake
from tests.helpers import manifest, run_cli, write_project
from tests.review.clips import write

KEY = "fal-takes-key"


def lock_entry(root: Path, clip: str) -> dict[str, Any]:
    return dict(yaml.safe_load((root / "aivp.lock").read_text())["targets"][f"clip:{clip}"])


def log(root: Path, clip: str) -> dict[str, Any]:
    return dict(json.loads((root / "video/log" / f"{clip}.json").read_text()))


def local_project(root: Path) -> Path:
    # a hand-held camera: the local renderer's wobble follows the seed, so takes differ
    return write_project(root, manifest({"a": {"prompt": "a street", "camera": "handheld"},
                                         "b": {"prompt": "a door"}}))


def test_reject_builds_a_new_take_with_a_new_seed_and_pick_takes_the_old_one_back(tmp_path: Path) -> None:
    root = local_project(tmp_path / "p")
    assert run_cli("-C", str(root)).code == 0
    first = (root / "video/clips/a.mp4").read_bytes()
    assert lock_entry(root, "a")["take"] == 1

    result = run_cli("-C", str(root), "reject", "a", "--reason", "the wobble is too strong")
    assert result.code == 0 and "take 1 rejected" in result.out
    assert "rejected: take 1 rejected: the wobble is too strong" in run_cli("-C", str(root), "status").out
    assert lock_entry(root, "a")["rejected"] == "the wobble is too strong"

    result = run_cli("-C", str(root))
    assert result.code == 0 and "generated a" in result.out and "generated b" not in result.out
    second = (root / "video/clips/a.mp4").read_bytes()
    entry = lock_entry(root, "a")
    assert entry["take"] == 2 and "rejected" not in entry and entry["seed"] != 1 and second != first

    takes = Project.load(root).takes("a")
    assert [(t.number, t.current, t.rejected) for t in takes] == [
        (1, False, "the wobble is too strong"), (2, True, None)]
    assert takes[0].seed == 1 and takes[1].seed == entry["seed"]
    listing = run_cli("-C", str(root), "takes", "a").out
    assert "rejected: the wobble is too strong" in listing and "*    2" in listing

    assert run_cli("-C", str(root), "pick", "a", "1").code == 0
    assert (root / "video/clips/a.mp4").read_bytes() == first
    entry = lock_entry(root, "a")
    assert (entry["take"], entry["picked"], entry["seed"]) == (1, True, 1)
    assert log(root, "a")["take"] == 1 and log(root, "a")["seed"] == 1
    assert "2 up to date" in run_cli("-C", str(root)).out  # the pick is what the manifest asks


def test_reroll_makes_a_take_now_with_the_given_seed(tmp_path: Path) -> None:
    root = local_project(tmp_path / "p")
    assert run_cli("-C", str(root)).code == 0
    result = run_cli("-C", str(root), "reroll", "a", "--seed", "77")
    assert result.code == 0 and "generated a" in result.out and "generated b" not in result.out
    assert lock_entry(root, "a")["seed"] == 77
    assert [t.seed for t in Project.load(root).takes("a")] == [1, 77]
    assert "2 up to date" in run_cli("-C", str(root)).out


def test_takes_of_an_unknown_or_unbuilt_clip_are_clear_errors(tmp_path: Path) -> None:
    root = local_project(tmp_path / "p")
    assert "has no takes yet" in run_cli("-C", str(root), "takes", "a").out
    result = run_cli("-C", str(root), "pick", "nope", "1")
    assert result.code == 2 and "no clip named 'nope'" in result.err and "Traceback" not in result.err
    assert run_cli("-C", str(root), "reject", "a").code == 2  # nothing built to reject
    assert run_cli("-C", str(root)).code == 0
    result = run_cli("-C", str(root), "pick", "a", "3")
    assert result.code == 2 and "has no take 3 (it has 1)" in result.err


# ------------------------------------------------------------------ remote: counted by the fake
@pytest.fixture
def fal(monkeypatch: pytest.MonkeyPatch) -> Iterator[FalFake]:
    with FalFake(key=KEY, latency=0.05) as fake:
        monkeypatch.setenv("AIVP_FAL_QUEUE_URL", fake.queue_url)
        monkeypatch.setenv("AIVP_FAL_REST_URL", fake.rest_url)
        monkeypatch.setenv("FAL_KEY", KEY)
        yield fake


def fal_project(root: Path, **top: Any) -> Path:
    return write_project(root, {
        "version": 1, "name": "takes",
        "defaults": {"provider": "fal", "model": "fal-ai/bytedance/seedance/v1.5/pro",
                     "resolution": "480p", "duration": 4, "seed": 3, "camera": "slow push-in"},
        "providers": {"fal": {"poll_interval": 0.02}},
        "clips": {"hero": {"prompt": "a lighthouse"}},
        **top,
    })


def black_clip(path: Path) -> bytes:
    """A 4 s 480p clip of black frames: right size and length, so only review catches it."""
    frames = [np.zeros((480, 854, 3), np.uint8)] * 96
    return write(path, frames, fps=Fraction(24)).read_bytes()


def test_pick_calls_no_provider_and_reject_pays_for_exactly_one_new_take(tmp_path: Path, fal: FalFake) -> None:
    root = fal_project(tmp_path / "p")
    assert run_cli("-C", str(root)).code == 0
    first = lock_entry(root, "hero")
    assert run_cli("-C", str(root), "reject", "hero").code == 0
    status = run_cli("-C", str(root), "status").out
    assert "rejected" in status and "$" in status  # the new take's estimate is shown
    assert run_cli("-C", str(root)).code == 0
    assert [e["input"].get("seed") for e in fal.ledger] == [3, lock_entry(root, "hero")["seed"]]
    assert fal.ledger[1]["input"]["seed"] != 3
    requests = len(fal.requests)
    assert run_cli("-C", str(root), "pick", "hero", "1").code == 0
    assert len(fal.requests) == requests and len(fal.ledger) == 2  # zero provider calls
    assert lock_entry(root, "hero")["request_id"] == first["request_id"]
    assert log(root, "hero")["request_id"] == first["request_id"]
    assert run_cli("-C", str(root)).code == 0 and len(fal.ledger) == 2


def test_build_review_retries_only_the_failed_clip_with_a_new_seed(tmp_path: Path, fal: FalFake) -> None:
    root = fal_project(tmp_path / "p")
    fal.inject("result", output=black_clip(tmp_path / "black.mp4"))  # the first job comes back black
    result = run_cli("-C", str(root), "--review", "--retry-failed", "2")
    assert result.code == 0, result.out + result.err
    failed_line = next(line for line in result.out.splitlines() if line.startswith("reviewed hero: FAILED"))
    assert "black_frames" in failed_line and "reviewed hero: passed" in result.out
    assert len(fal.ledger) == 2 and fal.ledger[1]["input"]["seed"] != 3
    takes = Project.load(root).takes("hero")
    assert [(t.review, t.current) for t in takes] == [("failed", False), ("passed", True)]
    assert takes[0].rejected is not None and takes[0].rejected.startswith("review failed:")
    assert "black_frames" in takes[0].rejected
    assert log(root, "hero")["review"]["passed"] is True and log(root, "hero")["take"] == 2
    assert [(r["File"], r["Status"]) for r in parse_plan((root / "video/plan.md").read_text())] == [
        ("video/clips/hero.mp4", "done")]


def test_retries_stop_at_the_count_and_the_budget_and_the_build_fails(tmp_path: Path, fal: FalFake) -> None:
    black = black_clip(tmp_path / "black.mp4")
    fal.output_override = black  # every take comes back black
    root = fal_project(tmp_path / "p")
    result = run_cli("-C", str(root), "--review", "--retry-failed", "1")
    assert result.code == 1 and "1 clip(s) failed review: hero" in result.err
    assert len(fal.ledger) == 2  # the first take and one retry, no more
    rows = parse_plan((root / "video/plan.md").read_text())
    assert rows[0]["Status"] == "failed"
    data = yaml.safe_load((root / "project.aivp.yaml").read_text())
    data["clips"]["extra"] = {"prompt": "a gull"}
    write_project(root, data)
    assert run_cli("-C", str(root)).code == 0  # a later build keeps the failed row
    assert [r["Status"] for r in parse_plan((root / "video/plan.md").read_text())] == ["failed", "done"]

    root2 = fal_project(tmp_path / "q")
    before = len(fal.ledger)
    estimate = Project.load(root2).status()[0].estimate_usd
    result = run_cli("-C", str(root2), "--review", "--retry-failed", "3", "--max-cost", f"{estimate * 1.5:.2f}")
    assert result.code == 1 and "not retried: another take" in result.out
    assert len(fal.ledger) == before + 1  # the budget allowed no retry


def test_retry_failed_needs_review(tmp_path: Path) -> None:
    root = local_project(tmp_path / "p")
    result = run_cli("-C", str(root), "--retry-failed", "1")
    assert result.code == 2 and "--retry-failed needs --review" in result.err
