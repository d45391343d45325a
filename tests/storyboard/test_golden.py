"""Golden tests: fixture storyboards in both layouts → the exact manifest compile writes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from aivpbuild.compile import compile_project
from aivpbuild.manifest import FrameRef, parse_manifest
from aivpbuild.prompts import render_prompt
from tests.storyboard.helpers import FIXTURES, SHOTS, layout1, layout2, write

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_golden_project_compiles_to_the_expected_manifest(golden: Path) -> None:
    result = compile_project(golden)
    expected = (FIXTURES / "golden" / "expected.aivp.yaml").read_text(encoding="utf-8")
    assert result.written
    assert (golden / "project.aivp.yaml").read_text(encoding="utf-8") == expected
    assert result.text == expected
    assert result.conflicts == [] and result.kept == []
    assert result.changes == [f"shot-0{i}: added" for i in range(1, 5)]
    # the only problem: shot-03 has no video section, so its Motion text is the prompt
    assert [(p.file.name, p.line) for p in result.problems] == [("shot-03.md", 20)]


def test_golden_manifest_is_valid_and_renders_literal_braces(golden: Path) -> None:
    compile_project(golden)
    path = golden / "project.aivp.yaml"
    manifest = parse_manifest(path.read_text(encoding="utf-8"), path)
    assert list(manifest.clips) == ["shot-01", "shot-02", "shot-03", "shot-04"]
    shot1 = manifest.clips["shot-01"]
    rendered = render_prompt(shot1.prompt, {}, clip_id="shot-01")
    assert "A sign reads {{ harbour }}." in rendered  # storyboard text is no template
    assert shot1.dialogue == ['[Elena, whispering]: "You\'re late."',
                              '[Joe, flat]: "The tide was."']
    assert manifest.clips["shot-04"].image == FrameRef(clip="shot-01", frame="last")
    assert manifest.clips["shot-02"].aspect_ratio == "21:9"
    assert manifest.clips["shot-02"].camera_fixed is True
    assert manifest.context == {"characters": "script/characters/*.md",
                                "scenes": "script/scenes/*.md"}


def test_both_layouts_give_the_same_clip(tmp_path: Path) -> None:
    one: dict[str, Any] = dict(prompt="A bus pulls away in the rain.\nWipers beat.",
                               camera="truck left", duration="6s", characters=[("Ana", "side")],
                               frames="first + last frame")
    write(tmp_path / "a", {f"{SHOTS}/shot-01.md": layout1(**one, fallback=None)})
    write(tmp_path / "b", {f"{SHOTS}/shot-01.md": layout2(**one)})
    clip_a = compile_project(tmp_path / "a").text.split("clips:")[1]
    clip_b = compile_project(tmp_path / "b").text.split("clips:")[1]
    # the prompts differ only in the framing words of the [Camera: ...] line
    assert clip_a.replace("medium shot, eye-level", "X") == clip_b.replace("wide shot", "X")
    assert "camera: truck left" in clip_a and "duration: 6" in clip_a
    assert "end_image: image/frames/shot-01-lf.png" in clip_a
    assert "refs: [image/characters/ana-side.png]" in clip_a


def copy_example(dest: Path) -> Path:
    """The example project's inputs and manifest (no outputs, no local state)."""
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns("video", ".aivp", "aivp.lock",
                                                                  "*.png"))
    return dest


def test_example_manifest_is_what_its_storyboard_compiles_to(tmp_path: Path) -> None:
    """On a fresh checkout (no record of a last compile) the example needs no change and has
    no conflict: every storyboard-owned field already agrees; the rest are hand edits."""
    root = copy_example(tmp_path / "last-delivery")
    before = (root / "project.aivp.yaml").read_text(encoding="utf-8")
    result = compile_project(root, dry_run=True)
    assert (result.changes, result.conflicts, result.kept, result.problems) == ([], [], [], [])
    assert result.text == before and result.diff == ""


def test_example_storyboard_alone_compiles_to_the_examples_shots(tmp_path: Path) -> None:
    root = tmp_path / "last-delivery"
    for part in ("storyboard", "script"):
        shutil.copytree(EXAMPLES / part, root / part)
    result = compile_project(root)
    assert result.problems == []
    path = root / "project.aivp.yaml"
    compiled = parse_manifest(path.read_text(encoding="utf-8"), path)
    source = EXAMPLES / "project.aivp.yaml"
    example = parse_manifest(source.read_text(encoding="utf-8"), source)
    hand_written = ["title"]  # a title card that is not in the storyboard
    assert list(compiled.clips) == [c for c in example.clips if c not in hand_written]
    owned = {"prompt", "alt_prompts", "camera", "camera_fixed", "duration", "aspect_ratio",
             "image", "end_image", "refs", "scene", "dialogue", "scene_shot", "meta"}
    for clip_id, ours in compiled.clips.items():
        theirs = example.clips[clip_id]
        assert ours.model_dump(include=owned) == theirs.model_dump(include=owned), clip_id
    assert example.clips["shot-05"].model == "fal-ai/veo3.1"  # the hero shot: a hand edit
    assert "【整体描述】" in compiled.clips["shot-05"].prompt  # the Chinese primary prompt
    assert compiled.clips["shot-05"].alt_prompts is not None
    assert "kling" in compiled.clips["shot-05"].alt_prompts


def test_example_title_card_renders_the_sheets() -> None:
    source = EXAMPLES / "project.aivp.yaml"
    example = parse_manifest(source.read_text(encoding="utf-8"), source)
    from aivpbuild.context import build_context

    context = build_context(example.context, EXAMPLES, source)
    title = render_prompt(example.clips["title"].prompt, context, clip_id="title")
    assert "Mara: a courier in a bright yellow raincoat" in title
    assert "A rain-soaked neon market street at night" in title
