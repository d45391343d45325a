"""The shot-file parser: both video-section layouts, tables, labels, the derived clip fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from aivpbuild.compile import camera_fixed, camera_of, clip_fields, resolver
from aivpbuild.storyboard import model_label, parse_frame_plan, parse_shot, parse_storyboard
from tests.storyboard.helpers import FIXTURES, SHOTS, layout1, layout2, write

GOLDEN_SHOTS = FIXTURES / "golden" / SHOTS
FF2, LF2 = "image/frames/shot-02-ff.png", "image/frames/shot-02-lf.png"


def test_layout_one_reads_every_section() -> None:
    shot, problems = parse_shot(GOLDEN_SHOTS / "shot-01.md")
    assert problems == []
    assert shot is not None
    assert (shot.clip_id, shot.scene_shot, shot.scene) == ("shot-01", "1.1", "harbour-night")
    assert (shot.variation, shot.emotion, shot.is_primary) == ("medium", "wary", True)
    assert shot.camera_position == "cam_1 (MS, eye-level)"
    assert [(c.name, c.angle, c.first_frame) for c in shot.characters] == [
        ("Elena", "side", "visible"), ("Joe", "front", "hidden")]
    assert shot.first_frame == "Elena on the quay, fog behind her."
    assert shot.motion == "Slow push-in while Joe appears."
    assert shot.dialogue == ('[Elena, whispering]: "You\'re late."', '[Joe, flat]: "The tide was."')
    assert (shot.bgm, shot.sfx) == ("cello drone", "foghorn")
    assert [(p.family, p.primary) for p in shot.prompts] == [("kling", True), ("seedance", False)]
    assert shot.prompts[0].text.startswith("[Camera: slow push-in")
    assert (shot.input_frames, shot.duration, shot.aspect_ratio, shot.camera_mode) == (
        "first + last frame", 5.0, "16:9", "unfixed")
    assert shot.lines["duration"] == 55 and shot.lines["scene"] == 8


def test_layout_two_reads_labels_quotes_and_parameters() -> None:
    shot, problems = parse_shot(GOLDEN_SHOTS / "shot-02.md")
    assert problems == [] and shot is not None
    assert [(p.model, p.family, p.primary) for p in shot.prompts] == [
        ("Seedance 2.0", "seedance", True), ("Kling 3.0", "kling", False)]
    assert shot.prompts[0].text.splitlines()[0] == "【整体描述】雾中的港口，远处灯塔闪烁。"
    assert (shot.duration, shot.aspect_ratio) == (4.0, "21:9")
    assert shot.camera_setting == "static (unfixed camera = NO)"
    assert shot.dialogue == ()


def test_labels_are_lenient_about_case_colons_and_order(tmp_path: Path) -> None:
    text = ("# SHOT 3.4\n\n## metadata\n\n|field|value|\n|-|-|\n|scene|Dock|\n|DURATION|7 sec|\n\n"
            "## for AIVP-video\n\n### Kling 2.1 — primary\n\n```\nA gull lands.\n```\n\n"
            "**Camera mode:** Fixed\n**aspect ratio** ： 9:16\n**Input Frames:** first frame\n")
    shot, problems = parse_shot(write(tmp_path, {"shot-02.md": text}) / "shot-02.md")
    assert problems == [] and shot is not None
    assert (shot.scene_shot, shot.scene, shot.metadata_duration) == ("3.4", "dock", 7.0)
    assert (shot.aspect_ratio, shot.camera_mode, shot.input_frames) == ("9:16", "Fixed",
                                                                        "first frame")
    fields = clip_fields(shot)
    assert (fields["camera_fixed"], fields["duration"], fields["camera"]) == (True, 7, "static")


def test_chinese_headings_and_labels(tmp_path: Path) -> None:
    text = ("# 镜头 2.3\n\n## 元数据\n\n| 字段 | 值 |\n|---|---|\n"
            "| 场景 | market |\n| 时长 | 4秒 |\n\n"
            "## 角色\n\n| 角色 | 首帧 | 尾帧 | 肖像角度 |\n"
            "|---|---|---|---|\n| @Lin | 可见 | 可见 | 侧面 |\n\n"
            "## 镜头分解\n\n### 运动\n> 镜头缓慢推进。\n\n## 音频\n\n| 层 | 内容 |\n|---|---|\n"
            "| 对白 | [Lin]: \"走吧。\" |\n")
    shot, problems = parse_shot(write(tmp_path, {"shot-01.md": text}) / "shot-01.md")
    assert shot is not None
    assert (shot.scene_shot, shot.scene, shot.metadata_duration) == ("2.3", "market", 4.0)
    assert [(c.name, c.angle) for c in shot.characters] == [("Lin", "side")]
    assert shot.motion == "镜头缓慢推进。" and shot.dialogue == ('[Lin]: "走吧。"',)
    assert [p.message for p in problems] == [
        "no prompt block under '## For aivp-video'; using the Motion description (and dialogue) "
        "as the prompt"]
    assert shot.prompts[0].text == '镜头缓慢推进。\n[Lin]: "走吧。"'


def test_image_section_keyframe_prompts_become_meta() -> None:
    examples = Path(__file__).parents[2] / "examples" / "storyboard" / "storyboard-final"
    shot, _ = parse_shot(examples / "shots" / "shot-03.md")
    assert shot is not None
    assert set(shot.keyframe_prompts) == {"first", "last"}
    assert shot.keyframe_prompts["last"].startswith("Same framing, the green door open")
    assert clip_fields(shot)["meta"]["keyframe_prompts"] == shot.keyframe_prompts


@pytest.mark.parametrize(("frames", "variation", "image", "end_image"), [
    ("first-frame only", "medium", "image/frames/shot-02-ff.png", None),
    ("first + last frame", "small", FF2, LF2),
    ("First and last frames", "small", FF2, LF2),
    ("none (text-to-video)", "large", None, None),
    ("last frame of shot-01 (continuity)", "small", {"clip": "shot-01", "frame": "last"}, None),
    ("first frame = last frame of Shot 1.1", "small", {"clip": "shot-01", "frame": "last"}, None),
    ("首尾帧", "small", FF2, LF2),
])
def test_input_frames_rule(tmp_path: Path, frames: str, variation: str, image: object,
                           end_image: object) -> None:
    write(tmp_path, {f"{SHOTS}/shot-01.md": layout1("1.1"),
                     f"{SHOTS}/shot-02.md": layout2("1.2", frames=frames, variation=variation)})
    shots, problems = parse_storyboard(tmp_path / "storyboard" / "storyboard-final")
    assert problems == []
    fields = clip_fields(shots[1], resolver(shots))
    assert fields.get("image") == image
    assert fields.get("end_image") == end_image


def test_variation_decides_the_last_frame_when_input_frames_are_not_given(tmp_path: Path) -> None:
    for variation, expected in (("small", None), ("medium", "image/frames/shot-01-lf.png"),
                                ("large", "image/frames/shot-01-lf.png")):
        text = layout1(variation=variation).replace("**Input frames**: first-frame only\n", "")
        shot, _ = parse_shot(write(tmp_path, {"shot-01.md": text}) / "shot-01.md")
        assert shot is not None and shot.input_frames is None
        assert clip_fields(shot).get("end_image") == expected


@pytest.mark.parametrize(("tag", "camera", "fixed"), [
    ("[Camera: slow push-in, medium shot, eye-level]", "slow push-in", False),
    ("[Camera: slow orbit left, handheld, wide shot, high angle]", "slow orbit left, handheld",
     False),
    ("[Camera: static, close-up]", "static", True),
    ("[Camera: medium shot, eye-level]", None, False),  # framing only: no movement
    ("【镜头：缓慢推进，特写】", "缓慢推进", False),
])
def test_camera_movement_from_the_prompt(tmp_path: Path, tag: str, camera: str | None,
                                         fixed: bool) -> None:
    text = ("# Shot 1.1\n\n## For aivp-video\n\n### Kling 3.0 (Primary)\n\n```\n"
            f"{tag}\nA door opens.\n```\n")
    shot, _ = parse_shot(write(tmp_path, {"shot-01.md": text}) / "shot-01.md")
    assert shot is not None
    assert camera_of(shot) == (camera, fixed)


@pytest.mark.parametrize(("text", "fixed"), [
    ("fixed", True), ("unfixed", False), ("static (unfixed camera = NO)", True),
    ("pan right (unfixed camera = YES)", False), ("tripod", True), ("handheld drift", False),
    ("slow push-in", None), ("固定机位", True),
])
def test_camera_fixed_words(text: str, fixed: bool | None) -> None:
    assert camera_fixed(text) is fixed


@pytest.mark.parametrize(("text", "expected"), [
    ("Seedance 2.0 (Primary)", ("Seedance 2.0", "seedance", True)),
    ("Kling 3.0 (Fallback)", ("Kling 3.0", "kling", False)),
    ("(Seedance 2.0 format — primary):", ("Seedance 2.0", "seedance", True)),
    ("Veo 3.1 — backup", ("Veo 3.1", "veo", False)),
    ("可灵 2.1（主要）", ("可灵 2.1", "kling", True)),
    ("Clip Generation", None),
    ("Parameters", None),
])
def test_model_labels(text: str, expected: tuple[str, str, bool] | None) -> None:
    assert model_label(text) == expected


def test_missing_audio_table_takes_dialogue_from_the_prompt(tmp_path: Path) -> None:
    text = ("# Shot 1.1\n\n## For aivp-video\n\n### Kling 3.0 (Primary)\n\n```\n"
            "[Camera: pan left]\nShe turns.\n[Mara, calm]: \"Not yet.\"\n(Duration: 5s)\n```\n")
    shot, _ = parse_shot(write(tmp_path, {"shot-01.md": text}) / "shot-01.md")
    assert shot is not None
    assert clip_fields(shot)["dialogue"] == '[Mara, calm]: "Not yet."'


def test_frame_plan_entries() -> None:
    path = Path(__file__).parents[2] / "examples/storyboard/storyboard-final/frame-plan.md"
    plan, problems = parse_frame_plan(path)
    assert problems == [] and plan is not None
    assert plan.title == "Last Delivery"
    assert plan.summary["shots"] == "6"
    assert [(f.number, f.scene_shot, f.which, f.priority) for f in plan.frames] == [
        (1, "2.1", "first", 1), (2, "2.1", "last", 1), (3, "1.2", "first", 2),
        (4, "3.1", "first", 2), (5, "3.2", "first", 2)]
    assert plan.frames[1].details["parent"] == "Frame 1"
    assert plan.frames[0].line == 16
