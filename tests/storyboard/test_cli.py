"""``aivpbuild compile`` and the storyboard checks in ``aivpbuild status``, through the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import keyframe, run_cli, tree
from tests.storyboard.helpers import SHOTS, layout1, layout2, write
from tests.storyboard.test_merge import edit

MANIFEST = "project.aivp.yaml"


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """Two one-second shots (both layouts), a scene sheet, and shot-01's keyframe."""
    root = write(tmp_path / "film", {
        f"{SHOTS}/shot-01.md": layout1("1.1", prompt="A door opens.", duration="1s"),
        f"{SHOTS}/shot-02.md": layout2("1.2", prompt="Rain on the roof.", duration="1s"),
        "script/scenes/street.md": "# Scene: Street\n\n## Scene Prompt\n> a street\n"})
    keyframe(root / "image/frames/shot-01-ff.png")
    return root


def tiny(root: Path) -> None:
    """A hand edit that keeps the test renders small."""
    edit(root / MANIFEST, ("resolution: 720p", "resolution: 64x36, fps: 8"))


def test_compile_writes_the_manifest_and_reports_what_it_did(board: Path) -> None:
    run = run_cli("-C", str(board), "compile")
    assert run.code == 0, run.err
    assert "  shot-01: added\n  shot-02: added\n" in run.out
    assert "wrote project.aivp.yaml: 2 change(s), 0 conflict(s), 1 warning(s)" in run.out
    assert "shot-02: image/frames/shot-02-ff.png missing — will fall back to text-to-video" in run.err
    assert (board / MANIFEST).is_file()
    assert (board / ".aivp/compiled" / MANIFEST).is_file()  # the merge base for next time


def test_dry_run_writes_nothing(board: Path) -> None:
    before = tree(board)
    run = run_cli("-C", str(board), "compile", "--dry-run")
    assert run.code == 0, run.err
    assert "dry run: would write project.aivp.yaml: 2 change(s)" in run.out
    assert tree(board) == before


def test_diff_shows_a_unified_diff_without_writing(board: Path) -> None:
    assert run_cli("-C", str(board), "compile").code == 0
    edit(board / SHOTS / "shot-02.md", ("Rain on the roof.", "Hail on the roof."))
    before = tree(board)
    run = run_cli("-C", str(board), "compile", "--diff")
    assert run.code == 0, run.err
    assert run.out.startswith("--- a/project.aivp.yaml\n+++ b/project.aivp.yaml\n@@ ")
    assert "-      Rain on the roof.\n+      Hail on the roof.\n" in run.out
    assert tree(board) == before


def test_conflicts_and_kept_shots_are_printed(board: Path) -> None:
    assert run_cli("-C", str(board), "compile").code == 0
    edit(board / MANIFEST, ("camera: slow push-in", "camera: whip pan"),
         ("      Rain on the roof.\n", "      Rain on the tin roof.\n"))
    edit(board / SHOTS / "shot-01.md", ("[Camera: slow push-in", "[Camera: crane up"))
    (board / SHOTS / "shot-02.md").unlink()
    run = run_cli("-C", str(board), "compile")
    assert run.code == 0, run.err
    assert ("conflict: shot-01.camera: changed in the storyboard and by hand; kept your "
            "'whip pan' (the storyboard now says 'crane up')") in run.out
    assert "kept: shot-02: no longer in the storyboard, but edited by hand; kept" in run.out
    text = (board / MANIFEST).read_text("utf-8")
    assert "camera: whip pan" in text and "shot-02:" in text


def test_check_prints_warnings_and_strict_makes_them_an_error(board: Path) -> None:
    edit(board / SHOTS / "shot-02.md", ("| Scene | street |", "| Scene | roof |"))
    run = run_cli("-C", str(board), "compile", "--check")
    assert run.code == 0, run.err
    assert run.out == "checks: 2 problem(s)\n"
    assert ("storyboard/storyboard-final/shots/shot-02.md: warning: shot-02: "
            "image/frames/shot-02-ff.png missing — will fall back to text-to-video") in run.err
    assert "shot-02: scene 'roof' has no sheet script/scenes/roof.md" in run.err
    before = tree(board)
    strict = run_cli("-C", str(board), "compile", "--check", "--strict")
    assert strict.code == 2
    assert "error: the checks found problems (--strict; nothing written)" in strict.err
    assert "Traceback" not in strict.err
    assert run_cli("-C", str(board), "compile", "--strict").code == 2
    assert tree(board) == before  # nothing written


def test_check_with_everything_in_place_is_quiet(board: Path) -> None:
    keyframe(board / "image/frames/shot-02-ff.png")
    run = run_cli("-C", str(board), "compile", "--check", "--strict")
    assert (run.code, run.out, run.err) == (0, "checks: all good\n", "")


def test_a_missing_storyboard_is_a_clear_error(tmp_path: Path) -> None:
    for args in (("compile",), ("compile", "--storyboard", "nowhere"), ("compile", "--check")):
        run = run_cli("-C", str(tmp_path), *args)
        assert run.code == 2, args
        assert "error: storyboard directory" in run.err and "does not exist" in run.err
        assert "hint: pass --storyboard DIR" in run.err and "Traceback" not in run.err
    assert run_cli("-C", str(tmp_path / "nope"), "compile").code == 2


def test_storyboard_option_takes_another_directory(tmp_path: Path) -> None:
    write(tmp_path, {"boards/v2/shots/shot-01.md": layout1("1.1")})
    run = run_cli("-C", str(tmp_path), "compile", "--storyboard", "boards/v2")
    assert run.code == 0, run.err
    assert "shot-01:" in (tmp_path / MANIFEST).read_text("utf-8")


def test_without_the_compile_extra_the_message_says_what_to_install(
        board: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ruamel.yaml", None)  # as if not installed
    run = run_cli("-C", str(board), "compile")
    assert run.code == 2
    assert "pip install 'aivpbuild[compile]'" in run.err and "Traceback" not in run.err


def test_json_output(board: Path) -> None:
    run = run_cli("-C", str(board), "compile", "--json")
    data = json.loads(run.out)
    assert data["written"] is True and data["changes"] == ["shot-01: added", "shot-02: added"]
    assert [p["severity"] for p in data["problems"]] == ["warning"]


def test_status_runs_the_checks_and_says_a_missing_keyframe_once(board: Path) -> None:
    edit(board / SHOTS / "shot-02.md", ("| Scene | street |", "| Scene | roof |"),
         ("first-frame only", "first + last frame"))
    assert run_cli("-C", str(board), "compile").code == 0
    run = run_cli("-C", str(board), "status")
    assert run.code == 0, run.err
    assert ("shot-02.md:8: warning: shot-02: scene 'roof' has no sheet script/scenes/roof.md"
            in run.err)
    # the text-to-video fallback: one line for the clip, none from the checks
    assert sum("shot-02-ff" in line for line in run.err.splitlines()) == 1
    assert ("note: shot-02: image/frames/shot-02-ff.png and image/frames/shot-02-lf.png not "
            "there yet; generating text-to-video until it is") in run.err
    data = json.loads(run_cli("-C", str(board), "status", "--json").out)
    assert len(data["warnings"]) == 1 and "roof" in data["warnings"][0]


def test_status_without_a_storyboard_has_no_warnings(tmp_path: Path) -> None:
    write(tmp_path, {MANIFEST: "version: 1\nname: t\nclips:\n  a: {prompt: x}\n"})
    data = json.loads(run_cli("-C", str(tmp_path), "status", "--json").out)
    assert data["warnings"] == []


def test_compile_twice_is_byte_identical_and_a_build_stays_up_to_date(board: Path) -> None:
    assert run_cli("-C", str(board), "compile").code == 0
    tiny(board)
    assert run_cli("-C", str(board), "compile").code == 0  # records nothing new
    first = tree(board)
    again = run_cli("-C", str(board), "compile")
    assert "project.aivp.yaml is up to date: 0 change(s), 0 conflict(s)" in again.out
    assert tree(board) == first  # byte-identical manifest, same merge record
    built = run_cli("-C", str(board), "-j", "1")
    assert built.code == 0, built.err
    assert run_cli("-C", str(board), "compile").code == 0
    status = run_cli("-C", str(board), "status")
    assert status.out.endswith("0 to make, 0 to restore, 3 up to date; estimated cost $0.00\n")


def test_a_new_keyframe_needs_no_recompile(board: Path) -> None:
    """The manifest names the keyframe the storyboard expects; once the file exists the clip
    is image-to-video (its key changes) without touching the manifest."""
    assert run_cli("-C", str(board), "compile").code == 0
    tiny(board)
    assert run_cli("-C", str(board), "-j", "1").code == 0
    keyframe(board / "image/frames/shot-02-ff.png")
    assert run_cli("-C", str(board), "compile").out.startswith("project.aivp.yaml is up to date")
    status = run_cli("-C", str(board), "status")
    assert "clip:shot-02  changed: mode (t2v → i2v), input image/frames/shot-02-ff.png" in status.out
    assert "not there yet" not in status.err


def test_a_broken_manifest_is_named_with_its_line(board: Path) -> None:
    write(board, {MANIFEST: "version: 1\nclips:\n  shot-01: [unclosed\n"})
    run = run_cli("-C", str(board), "compile")
    assert run.code == 2
    assert "project.aivp.yaml:4:" in run.err and "YAML syntax error" in run.err
    assert "Traceback" not in run.err


def test_missing_keyframes_are_one_notice_per_clip_for_remote_models_too(tmp_path: Path) -> None:
    from aivpbuild.api import Project

    write(tmp_path, {MANIFEST: (
        "version: 1\nname: t\ndefaults: {provider: fal, model: fal-ai/bytedance/seedance/v1.5/pro}\n"
        "clips:\n  a: {prompt: x, image: image/a-ff.png, end_image: image/a-lf.png}\n"
        "  b: {prompt: y, image: image/b-ff.png, end_image: image/b-lf.png}\n")})
    keyframe(tmp_path / "image/b-ff.png")
    assert Project.load(tmp_path).notices() == [
        "a: image/a-ff.png and image/a-lf.png not there yet; generating text-to-video until it is",
        "b: end keyframe image/b-lf.png not there yet; using the first keyframe only",
    ]
