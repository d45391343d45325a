"""`aivpbuild review`: every built clip checked, results in the log JSON, exit 1 on failure."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_cli
from tests.test_build import build, chain_project


def test_review_passes_local_clips_and_records_the_results(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    result = run_cli("review", "-C", str(root))
    assert result.code == 0, result.out + result.err
    assert result.out.splitlines() == ["a: ok", "b: ok", "c: ok"]
    log = json.loads((root / "video/log/b.json").read_text())
    assert log["review"]["passed"] is True
    assert log["review"]["checks"]["continuity"]["passed"] is True  # b starts on a's last frame
    assert log["review"]["checks"]["duration"]["value"] is not None
    data = json.loads(run_cli("review", "-C", str(root), "--json", "c").out)
    assert list(data) == ["c"] and data["c"]["checks"]["keyframe_framing"]["passed"]
    assert "continuity" not in data["c"]["checks"]  # c is not declared continuous
    import sqlite3

    with sqlite3.connect(root / ".aivp/state.db") as db:
        assert db.execute("SELECT count(*) FROM reviews WHERE passed = 1").fetchone()[0] == 3


def test_continuity_true_checks_the_cut_from_the_previous_clip(tmp_path: Path) -> None:
    import yaml

    root = chain_project(tmp_path / "p")
    data = yaml.safe_load((root / "project.aivp.yaml").read_text())
    data["clips"]["c"]["continuity"] = True  # metadata only: nothing becomes stale
    (root / "project.aivp.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    build(root)
    record = json.loads(run_cli("review", "-C", str(root), "--json").out)["c"]
    # c (a lighthouse keyframe) does not continue b's shot: the continuity check says so
    assert record["checks"]["continuity"]["passed"] is False and record["passed"] is False


def test_a_broken_clip_fails_the_review_with_exit_1(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    clip = root / "video/clips/c.mp4"
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    result = run_cli("review", "-C", str(root))
    assert result.code == 1
    assert "c: FAILED container" in result.out and "review failed for c" in result.err
    assert json.loads((root / "video/log/c.json").read_text())["review"]["passed"] is False
    from aivpbuild.outputs import parse_plan

    rows = {r["File"]: r["Status"] for r in parse_plan((root / "video/plan.md").read_text())}
    assert rows == {"video/clips/a.mp4": "done", "video/clips/b.mp4": "done", "video/clips/c.mp4": "failed"}
