"""Functional tests of the build engine through the library API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from aivpbuild import fsutil
from aivpbuild.api import Project
from aivpbuild.outputs import parse_plan
from aivpbuild.providers.local import LocalProvider
from tests.helpers import keyframe, manifest, run_cli, write_project

LOG_FIELDS = {
    "id": str, "type": str, "file": str, "model": str, "mode": str, "status": str,
    "request_id": (str, type(None)), "prompt": str, "seed": (int, type(None)), "duration": str,
    "aspect_ratio": str, "input_image": (str, type(None)), "character_refs": list,
    "video_url": (str, type(None)), "cost_usd": (int, float), "timestamp": str,
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Clip ids the local provider was asked to generate, in order."""
    made: list[str] = []
    original = LocalProvider.submit

    async def counting(self: LocalProvider, endpoint: str, payload: Any) -> Any:
        made.append(payload["clip_id"])
        return await original(self, endpoint, payload)

    monkeypatch.setattr(LocalProvider, "submit", counting)
    return made


def chain_project(root: Path) -> Path:
    """a (T2V) → frame a@last → b (I2V from it); c (I2V from a file); edit."""
    data = manifest({
        "a": {"prompt": "A red kite over a beach", "camera": "pan left"},
        "b": {"prompt": "The kite lands", "image": {"clip": "a", "frame": "last"}},
        "c": {"prompt": "A lighthouse", "image": "image/frames/c.png", "camera": "static"},
    }, edit={"output": "video/final.mp4"}, profiles={"preview": {"resolution": "32x18"}})
    return write_project(root, data, {"image/frames/c.png": "png"})


def build(root: Path, *targets: str, **kwargs: Any) -> Any:
    kwargs.setdefault("jobs", 1)
    profile = kwargs.pop("profile", None)
    return Project.load(root, profile=profile).build(targets, **kwargs)


def edit_manifest(root: Path, change: Any) -> None:
    path = root / "project.aivp.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def states(root: Path, profile: str | None = None) -> dict[str, str]:
    return {s.target: s.label for s in Project.load(root, profile=profile).status()}


def test_first_build_makes_everything_and_second_nothing(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    result = build(root)
    assert sorted(calls) == ["a", "b", "c"]
    assert result.failed == []
    assert sorted(result.by_action("generated")) == ["clip:a", "clip:b", "clip:c"]
    assert result.by_action("extracted") == ["frame:a@last"] and result.by_action("assembled") == ["edit:final"]
    for rel in ("video/clips/a.mp4", "video/clips/b.mp4", "video/clips/c.mp4", "video/final.mp4",
                "video/frames/a-last.png", "aivp.lock", "video/plan.md", "video/log/a.json"):
        assert (root / rel).is_file(), rel
    lock_before = (root / "aivp.lock").read_bytes()
    calls.clear()
    again = build(root)
    assert calls == []
    assert set(o.action for o in again.outcomes.values()) == {"up to date"}
    assert (root / "aivp.lock").read_bytes() == lock_before
    assert set(states(root).values()) == {"up to date"}


def test_prompt_edit_rebuilds_that_clip_and_its_dependents_only(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    calls.clear()
    edit_manifest(root, lambda d: d["clips"]["a"].update(prompt="A blue kite over a beach"))
    labels = states(root)
    assert labels["clip:a"] == "changed: prompt"
    assert labels["clip:c"] == "up to date"
    assert labels["clip:b"].startswith("changed: upstream a")
    result = build(root)
    assert calls == ["a", "b"]  # b's keyframe is a's last frame, which changed
    assert result.by_action("up to date") == ["clip:c"]
    assert "edit:final" in result.by_action("assembled")


def test_reverting_an_edit_restores_from_cache_for_free(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    original = (root / "video/clips/a.mp4").read_bytes()
    edit_manifest(root, lambda d: d["clips"]["a"].update(duration=2))
    assert states(root)["clip:a"] == "changed: params (duration 1.0 → 2.0)"
    build(root)
    calls.clear()
    edit_manifest(root, lambda d: d["clips"]["a"].update(duration=1))
    assert states(root)["clip:a"].startswith("restorable")
    result = build(root)
    assert calls == []
    assert "clip:a" in result.by_action("restored") and "clip:b" in result.by_action("restored")
    assert (root / "video/clips/a.mp4").read_bytes() == original


def test_keyframe_byte_change_is_stale_and_cosmetic_edits_are_not(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    calls.clear()
    path = root / "project.aivp.yaml"
    data = yaml.safe_load(path.read_text())
    # reorder keys, add comments and reflow whitespace in a prompt: nothing becomes stale
    data["clips"]["a"] = dict(reversed(list(data["clips"]["a"].items())))
    data["clips"]["a"]["prompt"] = "  A red   kite\n over a beach  "
    path.write_text("# a comment\n" + yaml.safe_dump(data, sort_keys=True).replace("clips:", "clips:  # more"))
    assert set(states(root).values()) == {"up to date"}
    keyframe(root / "image/frames/c.png", pattern=1)  # one changed area in the keyframe
    labels = states(root)
    assert labels["clip:c"] == "changed: input image/frames/c.png"
    build(root)
    assert calls == ["c"]


def test_profile_switch_back_and_forth_costs_nothing_the_second_time(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    build(root, profile="preview")
    assert sorted(calls) == ["a", "a", "b", "b", "c", "c"]
    calls.clear()
    build(root)
    build(root, profile="preview")
    assert calls == []


def test_deleted_output_is_restored_and_modified_output_is_kept(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    calls.clear()
    (root / "video/clips/c.mp4").unlink()
    assert states(root)["clip:c"].startswith("restorable")
    build(root)
    assert calls == [] and (root / "video/clips/c.mp4").is_file()
    (root / "video/clips/c.mp4").write_bytes(b"my own edit")
    assert states(root)["clip:c"].startswith("modified")
    build(root)
    assert (root / "video/clips/c.mp4").read_bytes() == b"my own edit"  # not silently overwritten
    build(root, "c", force=True)
    assert calls == ["c"]
    # the user's version was saved into the cache before being replaced
    objects = [p.read_bytes() for p in (root / ".aivp/cache/objects").rglob("*") if p.is_file()]
    assert b"my own edit" in objects


def test_no_op_status_hashes_no_file(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    Project.load(root).status()  # settle the stat cache
    before = fsutil.HASH_CALLS
    Project.load(root).status()
    Project.load(root).build((), jobs=1)
    assert before == fsutil.HASH_CALLS


def test_selection_by_glob_and_downstream(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root, "c")
    assert calls == ["c"]
    calls.clear()
    build(root, "a+")
    assert sorted(calls) == ["a", "b"]
    assert (root / "video/final.mp4").is_file()
    result = run_cli("status", "-C", str(root), "nope")
    assert result.code == 2 and "no target matches 'nope'" in result.err


def test_keep_going_skips_dependents_and_continues_others(tmp_path: Path, calls: list[str]) -> None:
    data = manifest({
        "bad": {"prompt": "x", "image": "image/frames/bad.png"},
        "child": {"prompt": "y", "image": {"clip": "bad", "frame": "last"}},
        "good": {"prompt": "z"},
    })
    root = write_project(tmp_path / "p", data, {"image/frames/bad.png": b"not a png at all"})
    result = run_cli("-C", str(root), "-k", "-j", "1")
    assert result.code == 1
    assert "FAILED bad" in result.out
    assert "skipped child" in result.out
    assert (root / "video/clips/good.mp4").is_file()
    assert not (root / "video/clips/bad.mp4").exists()
    assert "failed: clip:bad" in result.err and "frame:bad@last" in result.err


def test_logs_and_plan_have_the_downstream_format(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    for clip in ("a", "b", "c"):
        record = json.loads((root / f"video/log/{clip}.json").read_text())
        for name, kind in LOG_FIELDS.items():
            assert isinstance(record[name], kind), (name, record[name])
        assert record["status"] == "completed" and record["type"] == "clip"
        assert record["file"] == f"video/clips/{clip}.mp4"
    assert json.loads((root / "video/log/c.json").read_text())["mode"] == "I2V"
    assert json.loads((root / "video/log/a.json").read_text())["mode"] == "T2V"
    assert json.loads((root / "video/log/c.json").read_text())["input_image"] == "image/frames/c.png"
    rows = parse_plan((root / "video/plan.md").read_text())
    assert [r["File"] for r in rows] == ["video/clips/a.mp4", "video/clips/b.mp4", "video/clips/c.mp4"]
    assert {r["Status"] for r in rows} == {"done"} and {r["Type"] for r in rows} == {"clip"}
    assert [r["#"] for r in rows] == ["1", "2", "3"]


def test_lock_is_sorted_yaml_with_the_build_record(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    lock = yaml.safe_load((root / "aivp.lock").read_text())
    assert list(lock["targets"]) == sorted(lock["targets"])
    entry = lock["targets"]["clip:a"]
    assert entry["output"] == "video/clips/a.mp4" and len(entry["key"]) == 64
    assert entry["digest"] == fsutil.sha256_file(root / "video/clips/a.mp4")
    assert entry["provider"] == "local" and entry["seed"] == 1


def test_status_json_and_dry_run(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    result = run_cli("status", "-C", str(root), "--json")
    data = json.loads(result.out)
    assert result.code == 0 and data["stale"] == 5
    assert {t["target"]: t["state"] for t in data["targets"]}["clip:a"] == "missing"
    dry = run_cli("-C", str(root), "-n")
    assert dry.code == 0 and "would make" in dry.out
    assert calls == [] and not (root / "video").exists()


def test_graph_formats(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    mermaid = run_cli("graph", "-C", str(root)).out
    assert mermaid.startswith("graph LR") and '["frame:a@last"]' in mermaid
    dot = run_cli("graph", "-C", str(root), "--format", "dot").out
    assert '"clip:a" -> "frame:a@last";' in dot and '"frame:a@last" -> "clip:b";' in dot


def test_second_build_in_same_project_is_refused(tmp_path: Path) -> None:
    from aivpbuild.buildlock import BuildLock

    root = chain_project(tmp_path / "p")
    with BuildLock(root / ".aivp/build.pid"):
        result = run_cli("-C", str(root))
    assert result.code == 2
    assert "another aivpbuild" in result.err and "pid" in result.err


def test_init_then_build(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path / "new")).code == 0
    assert Project.load(tmp_path / "new").status()
    first = (tmp_path / "new/project.aivp.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=.aivp/project.aivp.schema.json"
    assert json.loads((tmp_path / "new/.aivp/project.aivp.schema.json").read_text())["title"]
    assert run_cli("init", str(tmp_path / "new")).code == 2


def test_clean_then_build_restores_everything(tmp_path: Path, calls: list[str]) -> None:
    root = chain_project(tmp_path / "p")
    build(root)
    calls.clear()
    assert run_cli("clean", "-C", str(root)).code == 0
    assert not (root / "video/clips/a.mp4").exists()
    build(root)
    assert calls == [] and (root / "video/final.mp4").is_file()


def test_commands_may_follow_the_common_options(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    assert "clip:a" in run_cli("-C", str(root), "status").out
    assert run_cli("-C", str(root), "graph", "--format", "dot").out.startswith("digraph")
    dry = run_cli("-C", str(root), "-n", "a")  # a target, not a command: builds (dry run)
    assert dry.code == 0 and "clip:a" in dry.out


def test_a_lock_held_by_a_dead_process_is_taken_over(tmp_path: Path, calls: list[str]) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = chain_project(tmp_path / "p")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from aivpbuild.buildlock import BuildLock;"
        "BuildLock(Path(sys.argv[2])).acquire(); print('held', flush=True); time.sleep(60)"),
        str(Path(__file__).resolve().parents[1]), str(root / ".aivp/build.pid")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    refused = run_cli("-C", str(root))
    assert refused.code == 2 and f"pid {holder.pid}" in refused.err
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    time.sleep(0.05)
    assert run_cli("-C", str(root), "-j", "1").code == 0 and sorted(calls) == ["a", "b", "c"]


def test_build_json_lines(tmp_path: Path) -> None:
    root = chain_project(tmp_path / "p")
    result = run_cli("-C", str(root), "--json", "-j", "1")
    assert result.code == 0
    events = [json.loads(line) for line in result.out.splitlines()]
    assert {"started", "done", "summary"} <= {e["event"] for e in events}
    assert events[-1]["counts"]["generated"] == 3
