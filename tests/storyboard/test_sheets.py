"""Character and scene sheets → the templating context (and into rendered prompts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aivpbuild.context import build_context
from aivpbuild.errors import ManifestError
from aivpbuild.prompts import render_prompt
from aivpbuild.sheets import load_sheets
from tests.storyboard.helpers import write

ELENA = """# Character: Elena Varga

## Role
- **Function:** lead

## Static Features
- **Hair:** silver bob
- **Eye colour**: grey
- Build: slight
- a free-text bullet without a label

## Voice Profile
- **Voice:** low,
  unhurried

## Prompt Anchor Phrase
> a woman in her sixties with a silver bob
> and a navy pea coat
"""

HARBOUR = """\ufeff# Scene: Harbour at Night\r\n\r\n## Lighting\r\n- **Key light:** sodium lamps\r\n
## Scene Prompt\r\n> a fog-bound harbour at night\r\n"""


def test_character_sheet_keys(tmp_path: Path) -> None:
    write(tmp_path, {"script/characters/Elena.md": ELENA})
    sheets = load_sheets(tmp_path, "script/characters/*.md", "character")
    assert sheets == {"elena": {
        "name": "Elena Varga", "function": "lead", "hair": "silver bob", "eye_colour": "grey",
        "build": "slight", "voice": "low, unhurried",
        "anchor": "a woman in her sixties with a silver bob and a navy pea coat"}}


def test_scene_sheet_keys_with_bom_and_crlf(tmp_path: Path) -> None:
    write(tmp_path, {"script/scenes/harbour-night.md": HARBOUR})
    sheets = load_sheets(tmp_path, "script/scenes/*.md", "scene")
    assert sheets == {"harbour-night": {"name": "Harbour at Night", "key_light": "sodium lamps",
                                        "prompt": "a fog-bound harbour at night"}}


def test_chinese_sheet(tmp_path: Path) -> None:
    write(tmp_path, {"script/characters/lin.md": "# 角色：林\n\n## 外貌\n- **发型：** 短发\n\n"
                     "## Prompt Anchor Phrase\n> 穿红色外套的短发女孩\n"})
    sheet = load_sheets(tmp_path, "script/characters/*.md", "character")["lin"]
    assert sheet == {"name": "林", "发型": "短发", "anchor": "穿红色外套的短发女孩"}


def test_sheets_feed_prompt_templates(tmp_path: Path) -> None:
    write(tmp_path, {"script/characters/elena.md": ELENA,
                     "script/scenes/harbour-night.md": HARBOUR})
    raw = {"characters": "script/characters/*.md", "scenes": "script/scenes/*.md", "mood": "wary"}
    read: list[str] = []
    context = build_context(raw, tmp_path, tmp_path / "project.aivp.yaml", read)
    prompt = render_prompt("{{ characters.elena.anchor }} waits in {{ scenes['harbour-night']"
                           ".prompt }}, {{ mood }}; hair: {{ characters.elena.hair }}.",
                           context, clip_id="shot-01")
    assert prompt == ("a woman in her sixties with a silver bob and a navy pea coat waits in "
                      "a fog-bound harbour at night, wary; hair: silver bob.")
    assert "script/characters/elena.md" in read


@pytest.mark.parametrize(("content", "fragments"), [
    ("", ["elena.md", "empty"]),
    (b"\x00\x01\x02junk\xff", ["elena.md", "not UTF-8"]),
    ("Just some words, no heading.\n", ["elena.md:1", "needs a heading"]),
    ("# Character: Elena\n\n- **Hair:** silver\n\n## Later\n- **Hair:** black\n",
     ["elena.md:6", "'hair' is given twice (also on line 3)"]),
])
def test_malformed_sheet_names_file_and_line(tmp_path: Path, content: str | bytes,
                                             fragments: list[str]) -> None:
    write(tmp_path, {"script/characters/elena.md": content})
    with pytest.raises(ManifestError) as info:
        load_sheets(tmp_path, "script/characters/*.md", "character")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_two_files_with_one_slug(tmp_path: Path) -> None:
    write(tmp_path, {"script/characters/Elena.md": ELENA, "script/characters/elena.md": ELENA})
    if len(list((tmp_path / "script/characters").iterdir())) < 2:
        pytest.skip("case-insensitive file system")
    with pytest.raises(ManifestError, match="sheet 'elena' is also defined by"):
        load_sheets(tmp_path, "script/characters/*.md", "character")


def test_example_sheets_load() -> None:
    examples = Path(__file__).parents[2] / "examples"
    characters = load_sheets(examples, "script/characters/*.md", "character")
    scenes = load_sheets(examples, "script/scenes/*.md", "scene")
    assert characters["mara"]["anchor"].startswith("a courier in a bright yellow raincoat")
    assert characters["mara"]["outfit"].startswith("bright yellow raincoat")
    assert set(scenes) == {"neon-market", "apartment-nine", "rooftop"}
    assert all(scene["prompt"] for scene in scenes.values())
