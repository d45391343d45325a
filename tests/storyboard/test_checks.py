"""``check_project``: keyframes, portraits, scene sheets, durations and the frame plan."""

from __future__ import annotations

from pathlib import Path

from aivpbuild.compile import check_project
from tests.helpers import keyframe
from tests.storyboard.helpers import SHOTS, layout1, layout2, write

PLAN = ("# Frame Generation Plan — Test\n\n## Generation Queue\n\n### Priority 1: all\n\n"
        "#### Frame 1 — Shot 1.1 first-frame\n- **Camera**: cam_1\n\n"
        "#### Frame 2 — Shot 1.1 last-frame\n- **Camera**: cam_1\n")


def messages(root: Path, **kwargs: object) -> list[str]:
    return [f"{p.severity}: {p.message}" for p in check_project(root, **kwargs)]  # type: ignore[arg-type]


def test_a_complete_project_has_no_problems(tmp_path: Path) -> None:
    write(tmp_path, {f"{SHOTS}/shot-01.md": layout1("1.1", characters=[("Mara", "side")],
                                                    frames="first + last frame"),
                     "storyboard/storyboard-final/frame-plan.md": PLAN,
                     "script/scenes/street.md": "# Scene: Street\n"})
    keyframe(tmp_path / "image/frames/shot-01-ff.png")
    keyframe(tmp_path / "image/frames/shot-01-lf.png")
    keyframe(tmp_path / "image/characters/mara-side.png")
    assert check_project(tmp_path) == []


def test_every_missing_input_is_reported_once(tmp_path: Path) -> None:
    write(tmp_path, {
        f"{SHOTS}/shot-01.md": layout1("1.1", characters=[("Mara", "side"), ("Joe", "front")],
                                       frames="first + last frame"),
        f"{SHOTS}/shot-02.md": layout2("1.2", characters=[("Mara", "side")], scene="roof")
        .replace("| Duration | 5s |", "| Duration | 4s |"),
        "storyboard/storyboard-final/frame-plan.md": PLAN,
        "script/scenes/street.md": "# Scene: Street\n"})
    keyframe(tmp_path / "image/frames/shot-01-lf.png")
    keyframe(tmp_path / "image/characters/mara-front.png")
    assert messages(tmp_path) == [
        "warning: shot-01: image/frames/shot-01-ff.png missing — will fall back to text-to-video",
        "warning: shot-02: image/frames/shot-02-ff.png missing — will fall back to text-to-video",
        "warning: shot-01: @Mara has no portrait image/characters/mara-side.png (there is "
        "mara-front.png: change the Portrait Angle?)",
        "warning: shot-01: @Joe has no portrait image/characters/joe-front.png",
        "warning: shot-02: scene 'roof' has no sheet script/scenes/roof.md",
        "warning: shot-02: Metadata says 4s but the video section says 5s; compile uses 5s",
        "warning: shot-02: no first-frame entry for Shot 1.2 in the frame plan",
    ]
    problems = check_project(tmp_path)
    duration = next(p for p in problems if "Metadata says" in p.message)
    assert duration.file.name == "shot-02.md" and duration.line == 37


def test_checks_follow_the_manifest_when_given(tmp_path: Path) -> None:
    write(tmp_path, {f"{SHOTS}/shot-01.md": layout1("1.1", frames="first + last frame"),
                     "script/scenes/street.md": "# Scene: Street\n"})
    keyframe(tmp_path / "image/frames/shot-01-ff.png")
    clips = {
        # the user pointed the clip at other keyframes and pinned image-to-video
        "shot-01": {"image": "image/frames/alt.png", "end_image": "image/frames/shot-01-lf.png",
                    "mode": "i2v", "refs": ["image/characters/x.png"]},
        "extra": {"image": {"clip": "shot-01", "frame": "last"}},
        "late": {"image": "image/frames/shot-01-ff.png", "end_image": "image/frames/late.png"},
    }
    assert messages(tmp_path, manifest_clips=clips) == [
        "error: shot-01: image/frames/alt.png and image/frames/shot-01-lf.png missing — the clip "
        "pins mode: i2v, so its build will fail until the keyframe exists",
        "warning: shot-01: reference image image/characters/x.png is missing; the build needs it "
        "(add the file or drop it from refs)",
        "warning: late: image/frames/late.png missing — the clip will use its first keyframe only",
    ]


def test_no_storyboard_and_no_manifest_clips_means_nothing_to_check(tmp_path: Path) -> None:
    assert check_project(tmp_path) == []


def test_example_project_passes_its_checks() -> None:
    examples = Path(__file__).parents[2] / "examples"
    assert check_project(examples) == []
