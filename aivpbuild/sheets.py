"""Character and scene sheets (``script/characters/*.md``, ``script/scenes/*.md``) → the
templating context: ``characters.<slug>`` / ``scenes.<slug>`` with ``name``, ``anchor`` (or
``prompt``) and every ``- **Label:** value`` bullet as a lower_snake_case key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from aivpbuild.errors import ManifestError
from aivpbuild.storyboard import label_line, norm, parse_blocks, quote_text, read_text, section_tree

SheetKind = Literal["character", "scene"]

#: The section whose blockquote is the phrase to paste into prompts, and its context key.
_PHRASE = {"character": (("anchor", "锚点", "prompt phrase"), "anchor"),
           "scene": (("scene prompt", "prompt", "场景提示"), "prompt")}


def snake(label: str) -> str:
    """``"Hair colour"`` → ``"hair_colour"`` (non-Latin words are kept)."""
    return "_".join(norm(label).split())


def load_sheets(root: Path, pattern: str, kind: SheetKind) -> dict[str, dict[str, Any]]:
    """Every sheet matching ``pattern`` (a glob relative to ``root``), keyed by slug (the file
    stem, lower-cased). A malformed sheet raises a ManifestError naming the file and line."""
    sheets: dict[str, dict[str, Any]] = {}
    owners: dict[str, Path] = {}
    for path in sorted(root.glob(pattern)):
        if not path.is_file():
            continue
        slug = path.stem.lower()
        if slug in owners:
            raise ManifestError(f"{path}: sheet {slug!r} is also defined by {owners[slug]}",
                                hint="rename one of the two files")
        owners[slug] = path
        sheets[slug] = load_sheet(path, kind)
    return sheets


def load_sheet(path: Path, kind: SheetKind) -> dict[str, Any]:
    """One sheet: ``name``, the anchor/prompt phrase and its bullets."""
    text, problems = read_text(path)
    if text is None:
        problem = problems[0]
        where = f"{path}:{problem.line}" if problem.line else str(path)
        raise ManifestError(f"{where}: {problem.message}",
                            hint=f"write the {kind} sheet as markdown (see STORYBOARD.md)")
    blocks, _fences = parse_blocks(text, path)
    tree = section_tree(blocks)
    title = next((s for s in tree.walk() if s.level), None)
    if title is None:
        raise ManifestError(f"{path}:1: a {kind} sheet needs a heading such as "
                            f"'# {kind.capitalize()}: Name'",
                            hint="add the heading, then '- **Label:** value' bullets")
    name = re.sub(rf"(?i)^\s*({kind}|角色|人物|场景)\s*[:：]\s*", "", title.title).strip()
    sheet: dict[str, Any] = {"name": name or path.stem}
    origin: dict[str, int] = {"name": title.line}
    words, phrase_key = _PHRASE[kind]
    for section in tree.walk():
        if section.level > 1 and any(w in norm(section.title) for w in words):
            phrase = quote_text(section)
            if phrase:
                sheet[phrase_key] = " ".join(phrase.split())
                origin[phrase_key] = section.line
            continue
        for block in section.blocks:
            for item, line in block.items if block.kind == "bullets" else []:
                _bullet(path, sheet, origin, item, line)
    return sheet


def _bullet(path: Path, sheet: dict[str, Any], origin: dict[str, int], item: str,
            line: int) -> None:
    first = item.split("\n")[0]
    pair = label_line(first) or label_line(first, plain=True)
    if pair is None or not pair[0]:
        return  # free text bullets carry no key
    key = snake(pair[0])
    value = " ".join([pair[1], *item.split("\n")[1:]]).strip()
    if key in sheet and key != "name" and sheet[key] != value:
        raise ManifestError(
            f"{path}:{line}: '{pair[0]}' is given twice (also on line {origin[key]}) with "
            "different values", hint="each label becomes one template key; rename or merge them")
    if key in ("name", "anchor", "prompt") and key in sheet:
        return  # the heading and the phrase section win
    sheet[key] = value
    origin[key] = line
