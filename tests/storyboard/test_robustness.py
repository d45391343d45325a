"""Damaged storyboard files: a clear message naming file and line, never a crash, and the
other shots still compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from aivpbuild.compile import compile_project
from aivpbuild.storyboard import parse_storyboard
from tests.storyboard.helpers import SHOTS, layout1, layout2, write

GOOD = layout1("1.1", prompt="The first shot is fine.")
SHOT2 = layout2("1.2", prompt="Second shot.", duration="4s")
HEAD_ONLY = "# Shot 1.2\n\n## Metadata\n\n| Field | Value |\n|---|---|\n| Scene | street |\n"
UNCLOSED_MID = (
    "# Shot 1.2\n\n## For aivp-video\n\n### Kling 3.0 (Primary)\n\n```\n[Camera: pan left]\n"
    "A tram passes.\n\n**Input frames**: first + last frame\n**Duration**: 6s\n\n"
    "### Seedance 2.0 (Fallback)\n\n```\n[Overall] A tram.\n```\n"
)
CHINESE = "\n".join([
    "# 镜头 1.2", "", "## 元数据", "", "| 字段 | 值 |", "|---|---|",
    "| 场景 | 街道 |", "", "## 视频", "", "### 可灵 2.1（主要）", "",
    "```", "镜头缓慢推进。", "```", "", "**时长**：4秒", ""])

# (case id, content of shot-02.md (or a file map), whether shot-02 parses,
#  expected (file name, line, severity, message fragment) of the problems that matter)
CASES: list[tuple[str, str | bytes | dict[str, str | bytes], bool,
                  list[tuple[str, int | None, str, str]]]] = [
    ("empty-file", "", False, [("shot-02.md", None, "error", "the file is empty")]),
    ("whitespace-only", "  \n\t\n", False, [("shot-02.md", None, "error", "empty")]),
    ("binary-junk", bytes(range(256)) * 4, False,
     [("shot-02.md", 2, "error", "not UTF-8")]),
    ("nul-bytes", b"# Shot 1.2\x00\x00\x00\n" + b"\x01\x02\x00" * 200, False,
     [("shot-02.md", None, "error", "binary")]),
    ("latin-1-encoded", "# Shot 1.2\n\nCaf\xe9 scene\n".encode("latin-1"), False,
     [("shot-02.md", 3, "error", "not UTF-8")]),
    ("bom-and-crlf", ("\ufeff" + SHOT2).replace("\n", "\r\n"), True, []),
    ("old-mac-line-endings", SHOT2.replace("\n", "\r"), True, []),
    ("tabs", SHOT2.replace("| Scene |", "\t| Scene |").replace("**Input", "\t**Input")
     .replace("- Duration", "\t- Duration"), True, []),
    ("truncated-inside-fence", layout1("1.2").split("eye-level]")[0] + "eye-level]\nA tram",
     True, [("shot-02.md", 24, "warning", "code fence is never closed")]),
    ("unclosed-fence-mid-file", UNCLOSED_MID, True,
     [("shot-02.md", 7, "warning", "code fence is never closed")]),
    ("truncated-inside-table", SHOT2[: SHOT2.index("| Duration")], False,
     [("shot-02.md", None, "error", "no prompt")]),
    ("heading-only", "# Shot 1.2\n", False,
     [("shot-02.md", None, "error", "found 'Shot 1.2' (line 1)")]),
    ("metadata-without-table", SHOT2.replace("| Field | Value |\n|-------|-------|\n", "")
     .replace("| Shot ID | 1.2 |\n| Scene | street |\n| Variation | small |\n"
              "| Duration | 4s |\n", "Scene is street.\n"), True,
     [("shot-02.md", 3, "warning", "'Metadata' has no table")]),
    ("table-without-separator", SHOT2.replace("|-------|-------|\n", ""), True,
     [("shot-02.md", 5, "warning", "no |---| separator row")]),
    ("characters-without-table", layout1("1.2", characters=[("Mara", "side")])
     .replace("| Character | First Frame | Last Frame | Portrait Angle |\n|---|---|---|---|\n"
              "| @Mara | visible | visible | side |\n", "Nobody yet.\n"), True,
     [("shot-02.md", 12, "warning", "lists no characters")]),
    ("no-recognised-headings", "# Notes\n\n## Ideas\n\nSomething with a tram.\n", False,
     [("shot-02.md", None, "error", "found 'Notes' (line 1), 'Ideas' (line 3)")]),
    ("duplicated-shot-id", {"shot-2.md": SHOT2, "shot-02.md": SHOT2}, True,
     [("shot-2.md", None, "error", "duplicate shot number 2: shot-02.md and shot-2.md")]),
    ("numbering-gap", {"shot-04.md": SHOT2}, True,
     [("shot-04.md", None, "warning", "jumps from shot-01 to shot-04 (no shot 2, 3)")]),
    ("duration-in-words", SHOT2.replace("- Duration: 4s", "- Duration: four seconds"), True,
     [("shot-02.md", 31, "warning", "'four seconds' is not a number of seconds")]),
    ("durations-disagree-between-models", layout1("1.2", duration="5s") + "\n**Duration**: 8s\n",
     True, [("shot-02.md", 40, "warning", "Duration 8.0 disagrees with 5.0 (line 30)")]),
    ("unknown-portrait-angle", layout1("1.2", characters=[("Mara", "upside down")]), True,
     [("shot-02.md", 16, "warning", "portrait angle 'upside down' is not front, side or back")]),
    ("bad-aspect-ratio", SHOT2.replace("- Aspect ratio: 16:9", "- Aspect ratio: wide"), True,
     [("shot-02.md", 32, "warning", "aspect ratio 'wide' is not W:H")]),
    ("two-primaries", layout1("1.2").replace("(Fallback)", "(Primary)"), True,
     [("shot-02.md", 36, "warning", "more than one prompt is marked primary")]),
    ("chinese-only-headings", CHINESE, True, []),
    ("unknown-chinese-headings", "# 备注\n\n## 想法\n\n一些文字。\n", False,
     [("shot-02.md", None, "error", "found '备注' (line 1), '想法' (line 3)")]),
    ("tilde-fences", layout1("1.2", duration="4s").replace("```", "~~~"), True, []),
    ("not-a-shot-name", {"notes.md": "# Notes\n"}, False,
     [("notes.md", None, "warning", "not named shot-NN.md; ignored")]),
    ("html-and-junk-markup", "<div>\n# Shot 1.2\n</div>\n\n<<<>>> ]]] ``` ~~~\n|||\n", False,
     [("shot-02.md", None, "error", "no prompt")]),
    ("only-tables-no-text", "| a | b |\n|---|---|\n| 1 | 2 |\n", False,
     [("shot-02.md", None, "error", "(found no headings)")]),
]


@pytest.mark.parametrize(("content", "parses", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_damaged_shot_file(tmp_path: Path, content: str | bytes | dict[str, str | bytes],
                           parses: bool, expected: list[tuple[str, int | None, str, str]]) -> None:
    files: dict[str, str | bytes] = {f"{SHOTS}/shot-01.md": GOOD}
    if isinstance(content, dict):
        files.update({f"{SHOTS}/{name}": text for name, text in content.items()})
    else:
        files[f"{SHOTS}/shot-02.md"] = content
    write(tmp_path, files)
    board = tmp_path / "storyboard" / "storyboard-final"
    shots, problems = parse_storyboard(board)
    ids = [s.clip_id for s in shots]
    assert ids[0] == "shot-01"  # the good file always survives
    assert (len(ids) == 2) is parses, [str(p) for p in problems]
    for name, line, severity, fragment in expected:
        matching = [p for p in problems if p.file.name == name and fragment in p.message]
        assert matching, f"no problem with {fragment!r} in {[str(p) for p in problems]}"
        assert matching[0].line == line and matching[0].severity == severity
        text = str(matching[0])
        assert text.startswith(str(board / "shots" / name) + (f":{line}:" if line else ":"))
    if not expected:
        assert problems == []
        assert shots[1].prompts and shots[1].duration == 4.0
    result = compile_project(tmp_path)  # compiling never crashes on it either
    assert "shot-01:" in result.text


def test_bom_crlf_file_reads_like_the_clean_one(tmp_path: Path) -> None:
    write(tmp_path / "a", {f"{SHOTS}/shot-01.md": SHOT2})
    write(tmp_path / "b", {f"{SHOTS}/shot-01.md": ("\ufeff" + SHOT2).replace("\n", "\r\n")})
    text_a = compile_project(tmp_path / "a").text.split("clips:")[1]
    text_b = compile_project(tmp_path / "b").text.split("clips:")[1]
    assert text_a == text_b


def test_unclosed_fence_is_closed_before_the_next_label(tmp_path: Path) -> None:
    write(tmp_path, {f"{SHOTS}/shot-01.md": UNCLOSED_MID})
    shots, _ = parse_storyboard(tmp_path / "storyboard" / "storyboard-final")
    shot = shots[0]
    assert shot.prompts[0].text == "[Camera: pan left]\nA tram passes."
    assert shot.prompts[1].text == "[Overall] A tram."
    assert (shot.input_frames, shot.duration) == ("first + last frame", 6.0)
    assert shot.lines["duration"] == 12  # line numbers are those of the file as written


def test_no_readable_shot_is_an_error_naming_each_file(tmp_path: Path) -> None:
    from aivpbuild.errors import ManifestError

    write(tmp_path, {f"{SHOTS}/shot-01.md": "", f"{SHOTS}/shot-02.md": b"\x00\xff"})
    with pytest.raises(ManifestError) as info:
        compile_project(tmp_path)
    message = str(info.value)
    assert "no shot could be read" in message
    assert "shot-01.md: error: the file is empty" in message
    assert "shot-02.md" in message
    assert not (tmp_path / "project.aivp.yaml").exists()


def test_missing_storyboard_directory(tmp_path: Path) -> None:
    from aivpbuild.errors import ManifestError

    with pytest.raises(ManifestError, match=r"storyboard directory .* does not exist"):
        compile_project(tmp_path)
