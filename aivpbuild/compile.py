"""``aivpbuild compile``: storyboard shots → ``project.aivp.yaml``, keeping every hand edit.

A three-way merge per field: what compile wrote last time (``.aivp/compiled/<manifest>``),
what the storyboard says now, and what the manifest says now. A field the user never touched
follows the storyboard; a field the user changed keeps the user's value (and when the
storyboard changed it too, the conflict is reported). The manifest is edited with ruamel.yaml
in round-trip mode so comments, key order and quoting survive.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import itertools
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivpbuild.errors import ConfigError, ManifestError
from aivpbuild.storyboard import (
    Problem,
    Shot,
    norm,
    parse_frame_plan,
    parse_storyboard,
    shot_number,
    shots_dir,
)

#: Clip fields compile owns, in the order it writes them.
OWNED = ("prompt", "alt_prompts", "camera", "camera_fixed", "duration", "aspect_ratio", "image",
         "end_image", "refs", "scene", "dialogue", "scene_shot", "meta")
DEFAULT_STORYBOARD = Path("storyboard") / "storyboard-final"
MANIFEST_NAMES = ("project.aivp.yaml", "project.aivp.yml")
SHEET_GLOBS = {"characters": "script/characters/*.md", "scenes": "script/scenes/*.md"}
FRESH_DEFAULTS = {"provider": "local", "duration": 5, "aspect_ratio": "16:9",
                  "resolution": "720p", "audio": True, "seed": 42}
_MISSING: Any = object()


@dataclass
class CompileResult:
    """What a compile did (or, with ``dry_run``, would do)."""

    text: str  # the manifest text after compiling
    written: bool  # whether the manifest file was (re)written
    diff: str  # unified diff: manifest before → after
    changes: list[str] = field(default_factory=list)  # storyboard changes applied
    conflicts: list[str] = field(default_factory=list)  # both sides changed: the user's edit kept
    kept: list[str] = field(default_factory=list)  # shots gone from the storyboard, kept (edited)
    problems: list[Problem] = field(default_factory=list)
    manifest: Path | None = None


# ----------------------------------------------------------------------------- shot → clip
def escape_template(text: str) -> str:
    """Storyboard text is literal: keep jinja delimiters in it from being rendered."""
    if not re.search(r"\{[{%#]", text):
        return text
    if "endraw" not in text:
        return "{% raw %}" + text + "{% endraw %}"
    return re.sub(r"\{([{%#])", lambda m: "{{ '{" + m.group(1) + "' }}", text)


#: Words of shot size and angle: a "[Camera: ...]" part made only of these is not a movement.
_FRAMING = {
    "extreme", "medium", "wide", "full", "long", "close", "up", "closeup", "tight", "two",
    "establishing", "shot", "angle", "view", "eye", "level", "low", "high", "birds", "bird", "s",
    "worms", "worm", "dutch", "overhead", "top", "down", "pov", "over", "the", "shoulder", "cu",
    "ecu", "mcu", "ms", "mws", "ws", "ls", "mls", "els", "fs", "ots", "cowboy",
    "特写", "近景", "中景", "远景", "全景",
    "平视", "仰视", "俯视", "仰拍", "俯拍",
}
_TEXT_ONLY = r"\b(none|t2v|text[- ]to[- ]video|text only)\b|无|纯文本|文生"
_CAMERA_TAG = re.compile(r"[\[【]\s*(?:camera|镜头|运镜)\s*[:：]\s*([^\]】]+)[\]】]", re.I)


def camera_fixed(text: str | None) -> bool | None:
    """Whether a camera description asks for a still camera (None: it does not say)."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    m = re.search(r"unfixed(?:\s*camera)?\s*[=:]\s*(yes|no|true|false)", t)
    if m:
        return m.group(1) in ("no", "false")
    if re.search(r"\b(unfixed|not fixed|moving|handheld)\b|非固定", t):
        return False
    if re.search(r"\b(fixed|static|tripod|locked)\b|固定", t):
        return True
    return None


def camera_of(shot: Shot) -> tuple[str | None, bool]:
    """The camera movement (framing words dropped) and whether the camera is fixed."""
    move: str | None = None
    primary = shot.primary_prompt
    for prompt in sorted(shot.prompts, key=lambda p: p is not primary):
        if m := _CAMERA_TAG.search(prompt.text):
            parts = [p.strip() for p in re.split(r"[,，;；]", m.group(1))]
            kept = [p for p in parts if p and not set(norm(p).split()) <= _FRAMING]
            move = ", ".join(kept) or None
            if move:
                break
    setting = re.sub(r"\s*[(（].*?[)）]", "", shot.camera_setting or "").strip() or None
    move = move or setting
    fixed = next((f for f in map(camera_fixed, (shot.camera_mode, shot.camera_setting, move))
                  if f is not None), False)
    if move is None and fixed:
        move = "static"
    return move, fixed


def frames_of(shot: Shot, resolve: Callable[[str], str | None], problems: list[Problem]
              ) -> tuple[Any, Any]:
    """``image`` and ``end_image`` by the input-frames rule (a continuity frame when the shot
    starts on another shot's frame; none for text-to-video)."""
    first = f"image/frames/{shot.clip_id}-ff.png"
    last = f"image/frames/{shot.clip_id}-lf.png"
    if shot.input_frames is None:
        return first, (last if shot.variation in ("medium", "large") else None)
    raw = unicodedata.normalize("NFKC", shot.input_frames).lower()
    image: Any = first
    cont = re.search(r"\b(first|last|end)[\s-]*frame\s*(?:of|from)\s*(?:shot\s*)?([\w.-]+)", raw)
    if cont:
        target = resolve(cont.group(2))
        if target is None:
            problems.append(Problem(shot.path, shot.lines.get("input_frames"),
                                    f"input frames name shot {cont.group(2)!r}, which is not in "
                                    "the storyboard; using this shot's own keyframe"))
        else:
            image = {"clip": target, "frame": "first" if cont.group(1) == "first" else "last"}
        raw = raw.replace(cont.group(0), " ")
    elif re.search(_TEXT_ONLY, raw):
        return None, None
    only_first = re.search(r"\bonly\b|仅", raw)
    wants_last = re.search(r"last|end|\+|both|首尾|尾帧", raw) and not only_first
    return image, (last if wants_last else None)


def clip_fields(shot: Shot, resolve: Callable[[str], str | None] = lambda _ref: None,
                problems: list[Problem] | None = None) -> dict[str, Any]:
    """The storyboard-owned fields of one clip (absent ones left out), in write order."""
    problems = [] if problems is None else problems
    out: dict[str, Any] = {}
    primary = shot.primary_prompt
    assert primary is not None  # parse_shot never returns a shot without a prompt
    out["prompt"] = escape_template(primary.text)
    alts = {p.family or "alt": escape_template(p.text) for p in shot.prompts if p is not primary}
    if alts:
        out["alt_prompts"] = alts
    move, fixed = camera_of(shot)
    if move:
        out["camera"] = move
    out["camera_fixed"] = fixed
    duration = shot.duration or shot.metadata_duration
    if duration:
        out["duration"] = int(duration) if float(duration).is_integer() else duration
    if ratio := shot.aspect_ratio or shot.metadata_aspect_ratio:
        out["aspect_ratio"] = ratio
    image, end_image = frames_of(shot, resolve, problems)
    if image:
        out["image"] = image
    if end_image:
        out["end_image"] = end_image
    refs = list(dict.fromkeys(portrait(c.name, c.angle) for c in shot.characters))
    if refs:
        out["refs"] = refs
    if shot.scene:
        out["scene"] = shot.scene
    lines = list(shot.dialogue)
    if not lines and "dialogue" not in shot.lines:  # no Audio table: spoken lines in the prompt
        lines = [ln.strip() for ln in primary.text.split("\n")
                 if re.match(r"\s*\[(?!\s*(camera|镜头))[^\]]+\]\s*[:：]\s*\S", ln, re.I)]
    if lines:
        out["dialogue"] = lines[0] if len(lines) == 1 else lines
    if shot.scene_shot:
        out["scene_shot"] = shot.scene_shot
    meta = {"emotion": shot.emotion, "variation": shot.variation,
            "camera_position": shot.camera_position, "bgm": shot.bgm, "sfx": shot.sfx,
            "keyframe_prompts": dict(shot.keyframe_prompts) or None}
    if meta := {k: v for k, v in meta.items() if v}:
        out["meta"] = meta
    return out


def portrait(name: str, angle: str) -> str:
    slug = "-".join(unicodedata.normalize("NFKC", name).lower().split())
    return f"image/characters/{slug}-{angle}.png"


def resolver(shots: Sequence[Shot]) -> Callable[[str], str | None]:
    """Resolve "shot-03", "03", "3" or a scene.shot number "1.3" to a clip id."""
    by_number = {shot_number(s.clip_id): s.clip_id for s in shots}
    by_scene = {s.scene_shot: s.clip_id for s in shots if s.scene_shot}

    def resolve(ref: str) -> str | None:
        ref = ref.strip(".-")
        if ref in by_scene and "." in ref:
            return by_scene[ref]
        m = re.fullmatch(r"(?:shot[-_]?)?(\d+)", ref)
        return by_number.get(int(m.group(1))) if m else None

    return resolve


# ----------------------------------------------------------------------------- YAML
def _ruamel(text: str = "") -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise ConfigError("compile needs ruamel.yaml and markdown-it-py",
                          hint="pip install 'aivpbuild[compile]'") from None
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = _guess_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indentation as the file already uses it."""
    mapping, offset = 0, -1
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    for above, below in itertools.pairwise(lines):
        if not re.match(r"\s*[^\s-][^:]*:\s*(#.*)?$", above):
            continue
        depth = len(above) - len(above.lstrip())
        inner = len(below) - len(below.lstrip())
        if below.lstrip().startswith("- ") and offset < 0 and inner >= depth:
            offset = inner - depth
        elif not below.lstrip().startswith("- ") and not mapping and inner > depth:
            mapping = inner - depth
    mapping = mapping or 2
    offset = 2 if offset < 0 else offset
    return mapping, max(offset + 2, mapping), offset


def _dump(yaml: Any, doc: Any) -> str:
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _node(value: Any, key: str = "") -> Any:
    """A plain value as a ruamel node with a deliberate style (YAML 1.1 safe for readers)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, Mapping):
        node = CommentedMap((k, _node(v, k)) for k, v in value.items())
        if key == "image" or key == "end_image" or key in ("defaults", "edit"):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list | tuple):
        seq = CommentedSeq(_node(v) for v in value)
        if key == "refs":
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str):
        return _scalar(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _scalar(text: str) -> Any:
    import yaml
    from ruamel.yaml.scalarstring import (
        DoubleQuotedScalarString,
        LiteralScalarString,
        PlainScalarString,
        SingleQuotedScalarString,
    )

    if "\n" in text.strip("\n"):
        return LiteralScalarString(text.strip("\n") + "\n")
    dumped = yaml.safe_dump(text, allow_unicode=True, width=1 << 20)
    if not dumped.startswith(("'", '"')):
        return PlainScalarString(text)
    if text.isprintable():
        return SingleQuotedScalarString(text)
    return DoubleQuotedScalarString(text)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _canon(value: Any, key: str = "") -> Any:
    """A value for comparison: whitespace runs and number/unit spellings do not count."""
    if value is _MISSING:
        return value
    value = _plain(value)
    if isinstance(value, dict):
        return {k: _canon(v, k) for k, v in value.items()}
    if key == "dialogue" and isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if key == "duration" and isinstance(value, str) and (m := re.match(r"\s*([\d.]+)", value)):
        return float(m.group(1))
    if isinstance(value, str):
        return " ".join(value.split())
    return value


def _same(a: Any, b: Any, key: str) -> bool:
    return _canon(a, key) == _canon(b, key)


# ----------------------------------------------------------------------------- comments
# ruamel keeps a comment with the node *before* it: the comment lines above a clip live in the
# tail of the previous clip's last value. Moving, adding or deleting entries therefore moves
# those "tail lines" along, so each comment stays above the entry it was written for.
@dataclass
class _Tail:
    eol: str | None  # the comment at the end of the entry's last line
    lines: list[str]  # whole comment (or blank) lines after the entry
    column: int = 0


def _is_block_scalar(value: Any) -> bool:
    from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

    return isinstance(value, LiteralScalarString | FoldedScalarString)


def _slot(container: Any, key: Any) -> tuple[Any, Any, int]:
    """Where the comment after ``container[key]`` is stored: its deepest last entry."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    value = container[key]
    if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
        return _slot(value, list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1)
    return container, key, 2 if isinstance(container, CommentedMap) else 0


def _tail(container: Any, key: Any, *, remove: bool = False) -> _Tail:
    owner, k, index = _slot(container, key)
    entry = owner.ca.items.get(k)
    token = entry[index] if entry and len(entry) > index else None
    if token is None or not hasattr(token, "value"):
        return _Tail(None, [])
    if remove:
        entry[index] = None
    text, column = token.value, token.column if token.column is not None else 0
    if _is_block_scalar(owner[k]):
        eol, body = None, " " * column + text
    elif text.startswith("\n"):
        eol, body = None, text[1:]
    else:
        eol, _, body = text.partition("\n")
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return _Tail(eol.strip() or None if eol else None, lines, column)


def _set_tail(container: Any, key: Any, tail: _Tail) -> None:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    owner, k, index = _slot(container, key)
    entry = owner.ca.items.setdefault(k, [None, None, None, None])
    if not tail.eol and not tail.lines:
        entry[index] = None
        return
    body = "".join(line + "\n" for line in tail.lines)
    column = tail.column
    if _is_block_scalar(owner[k]):
        lines = ([" " * column + tail.eol] if tail.eol else []) + tail.lines
        first = lines[0]
        column = len(first) - len(first.lstrip())
        text = "".join(line + "\n" for line in [first.lstrip(), *lines[1:]])
    else:
        text = (tail.eol or "") + "\n" + body
    entry[index] = CommentToken(text, CommentMark(column), None)


def _has_comments(value: Any) -> bool:
    """Whether any comment token sits inside ``value`` (its final tail excluded by caller)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(value, CommentedMap | CommentedSeq):
        return False
    tokens = [*value.ca.items.values(), value.ca.comment]
    if any("#" in str(getattr(t, "value", "")) for t in _flat(tokens)):
        return True
    children = value.values() if isinstance(value, CommentedMap) else value
    return any(_has_comments(child) for child in children)


def _flat(items: Any) -> Iterable[Any]:
    for item in items or ():
        if isinstance(item, list):
            yield from _flat(item)
        elif item is not None:
            yield item


def _commented(container: Any, key: Any) -> bool:
    """Whether the user commented on this entry: above it, on it, or inside it."""
    keys = list(container)
    index = keys.index(key)
    if index and any("#" in ln for ln in _tail(container, keys[index - 1]).lines):
        return True
    slot = _slot(container, key)
    own = [v for i, v in enumerate(container.ca.items.get(key) or [])
           if (container, key, i) != slot]  # the final tail belongs to the next entry
    if any("#" in str(getattr(t, "value", "")) for t in _flat(own)):
        return True
    tail = _tail(container, key)
    if tail.eol or (index == 0 and any("#" in ln for ln in tail.lines)):
        return True
    saved = _tail(container, key, remove=True)  # look inside without the final tail
    try:
        return _has_comments(container[key])
    finally:
        _set_tail(container, key, saved)


def _take_head(owner: tuple[Any, Any] | None, container: Any) -> list[str]:
    """Remove and return the comment lines above a mapping's first entry (ruamel keeps them
    with the key that owns the mapping, after that key's own end-of-line comment)."""
    if owner is None:
        return []
    parent, parent_key = owner
    entry = parent.ca.items.get(parent_key) or []
    lines: list[str] = []
    if len(entry) > 2 and entry[2] is not None:
        eol, _, body = entry[2].value.partition("\n")
        lines = body.split("\n")
        entry[2].value = eol + "\n" if eol.strip() else "\n"
        if not eol.strip():
            entry[2] = None
    if len(entry) > 3 and entry[3]:
        for token in entry[3]:
            lines += (" " * (token.column or 0) + token.value).split("\n")
        entry[3] = None
    container.ca.comment = None
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def _insert(container: Any, position: int, key: str, value: Any,
            owner: tuple[Any, Any] | None = None) -> None:
    """Insert an entry so every comment stays above the entry it was written for: the new
    entry takes over the lines that were above the entry it displaces. ``owner`` is the
    (parent, key) holding ``container``."""
    keys = list(container)
    if keys and position >= len(keys):
        tail = _tail(container, keys[-1], remove=True)
        _set_tail(container, keys[-1], _Tail(tail.eol, [], tail.column))
        container.insert(len(keys), key, value)
        _set_tail(container, key, _Tail(None, tail.lines, tail.column))
    elif position > 0:
        prev = keys[position - 1]
        tail = _tail(container, prev, remove=True)  # the lines above the entry now at position
        _set_tail(container, prev, _Tail(tail.eol, [], tail.column))
        container.insert(position, key, value)
        _set_tail(container, key, _Tail(None, tail.lines, tail.column))
    else:
        head = _take_head(owner, container) if keys else []
        container.insert(position, key, value)
        if head:
            _set_tail(container, key, _Tail(None, head))


def _delete(container: Any, key: str) -> None:
    """Delete an entry; its tail lines (the comments above the next entry) move up."""
    keys = list(container)
    index = keys.index(key)
    tail = _tail(container, key, remove=True)
    del container[key]
    if index and tail.lines:
        prev = keys[index - 1]
        before = _tail(container, prev, remove=True)
        _set_tail(container, prev, _Tail(before.eol, before.lines + tail.lines, before.column))


def _replace(container: Any, key: str, value: Any) -> None:
    """Replace a value; comments after it stay where they were."""
    tail = _tail(container, key, remove=True)
    container[key] = value
    _set_tail(container, key, tail)


# ----------------------------------------------------------------------------- merge
def _short(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    value = _plain(value)
    if not isinstance(value, str):
        return str(value)
    text = " ".join(value.split())
    return repr(text if len(text) <= 48 else text[:45] + "...")


class _Merge:
    """Applies the storyboard to a round-trip manifest document, collecting the report."""

    def __init__(self, result: CompileResult) -> None:
        self.result = result
        self.mutated = False  # whether the document changed (notes alone do not rewrite it)

    def fields(self, node: Any, keys: Sequence[str], base: Mapping[str, Any] | None,
               new: Mapping[str, Any], where: str, owner: tuple[Any, Any] | None = None) -> None:
        """Three-way merge of ``keys`` of one mapping (recursing into nested mappings)."""
        from ruamel.yaml.comments import CommentedMap

        base = base if isinstance(base, Mapping) else {}
        for key in keys:
            b, n = base.get(key, _MISSING), new.get(key, _MISSING)
            m = node.get(key, _MISSING)
            path = f"{where}.{key}"
            if _same(m, n, key):
                continue
            if _same(m, b, key):  # untouched by the user: follow the storyboard
                if n is not _MISSING:
                    self.mutated = True
                    self._set(node, key, n, list(new) if key not in OWNED else list(OWNED),
                              owner)
                    self.result.changes.append(f"{path}: {_short(m)} → {_short(n)}"
                                               if m is not _MISSING else f"{path}: added")
                elif _commented(node, key):
                    self.result.conflicts.append(f"{path}: the storyboard dropped it but it has "
                                                 "your comment; kept")
                else:
                    _delete(node, key)
                    self.mutated = True
                    self.result.changes.append(f"{path}: removed")
            elif _same(n, b, key):
                continue  # the user's edit; the storyboard did not change this field
            elif isinstance(m, CommentedMap) and isinstance(n, Mapping) and \
                    (b is _MISSING or isinstance(b, Mapping)):
                order = list(dict.fromkeys([*n, *(b if b is not _MISSING else {})]))
                self.fields(m, order, b if b is not _MISSING else None, n, path, (node, key))
            else:
                self.result.conflicts.append(
                    f"{path}: changed in the storyboard and by hand; kept your {_short(m)} "
                    f"(the storyboard now says {_short(n)})")

    @staticmethod
    def _set(node: Any, key: str, value: Any, order: list[str],
             owner: tuple[Any, Any] | None) -> None:
        if key in node:
            _replace(node, key, _node(value, key))
            return
        keys = list(node)
        rank = order.index(key) if key in order else len(order)
        after = [i for i, k in enumerate(keys) if k in order and order.index(k) < rank]
        before = [i for i, k in enumerate(keys) if k in order and order.index(k) > rank]
        position = after[-1] + 1 if after else (before[0] if before else len(keys))
        _insert(node, position, key, _node(value, key), owner)

    def clips(self, clips: Any, base: Mapping[str, Any] | None, new: Mapping[str, Any],
              unreadable: set[str], owner: tuple[Any, Any]) -> None:
        """Update, add and remove clips (``owner``: the document and its ``clips`` key)."""
        from ruamel.yaml.comments import CommentedMap

        base = base or {}
        for clip_id in list(clips):
            node = clips[clip_id]
            if clip_id in new:
                if isinstance(node, CommentedMap):
                    self.fields(node, OWNED, base.get(clip_id), new[clip_id], clip_id,
                                (clips, clip_id))
                else:
                    self.result.conflicts.append(f"{clip_id}: not a mapping in the manifest; "
                                                 "left as it is")
            elif clip_id in base and clip_id not in unreadable:
                if _same(node, base[clip_id], "") and not _commented(clips, clip_id):
                    _delete(clips, clip_id)
                    self.mutated = True
                    self.result.changes.append(f"{clip_id}: removed (no longer in the storyboard)")
                else:
                    self.result.kept.append(f"{clip_id}: no longer in the storyboard, but edited "
                                            "by hand; kept (delete it from the manifest if "
                                            "unwanted)")
        order = list(new)
        for index, clip_id in enumerate(order):
            if clip_id in clips:
                continue
            if clip_id in base:
                note = f"{clip_id}: deleted from the manifest by hand; not added back"
                if _same(base[clip_id], new[clip_id], ""):
                    self.result.changes.append(note)
                else:
                    self.result.conflicts.append(note + " (the storyboard changed it)")
                continue
            keys = list(clips)
            before = [keys.index(c) for c in order[:index] if c in clips]
            after = [keys.index(c) for c in order[index + 1 :] if c in clips]
            position = min(after) if after else (max(before) + 1 if before else len(keys))
            _insert(clips, position, clip_id, _node(new[clip_id]), owner)
            self.mutated = True
            self.result.changes.append(f"{clip_id}: added")


# ----------------------------------------------------------------------------- compile
def compile_project(root: Path, *, storyboard_dir: Path | None = None,
                    manifest: Path | None = None, dry_run: bool = False,
                    strict: bool = False) -> CompileResult:
    """Compile the storyboard into the manifest (merging into an existing one)."""
    root = Path(root)
    board = _storyboard_dir(root, storyboard_dir)
    _ruamel()  # fail early, with the install hint, if the extra is missing
    shots, problems = parse_storyboard(board)
    resolve = resolver(shots)
    new = {shot.clip_id: clip_fields(shot, resolve, problems) for shot in shots}
    if strict and problems:
        raise ManifestError(f"{board}: the storyboard has problems (--strict):\n"
                            + "\n".join(f"  {p}" for p in problems[:30]),
                            hint="fix them, or compile without --strict")
    if not shots:
        raise ManifestError(f"{board}: no shot could be read:\n"
                            + "\n".join(f"  {p}" for p in problems[:30]),
                            hint="shots live in storyboard/storyboard-final/shots/shot-NN.md")
    path = manifest or next((root / n for n in MANIFEST_NAMES if (root / n).is_file()),
                            root / MANIFEST_NAMES[0])
    result = CompileResult(text="", written=False, diff="", problems=problems, manifest=path)
    present = {p.stem.lower() for p in shots_dir(board).glob("*.md")}
    unreadable = present - set(new)
    context = {k: g for k, g in SHEET_GLOBS.items() if (root / Path(g).parent).is_dir()}
    base_path = root / ".aivp" / "compiled" / path.name
    base = _load_base(base_path, problems)
    old_text = path.read_text(encoding="utf-8") if path.is_file() else ""
    yaml = _ruamel(old_text)
    if old_text.strip():
        doc = _load_manifest(yaml, old_text, path)
        merge = _Merge(result)
        _merge_context(doc, base, context, merge)
        clips = doc.get("clips")
        if clips is None or not hasattr(clips, "insert"):
            raise ManifestError(f"{path}: `clips` is missing or not a mapping",
                                hint="add `clips:` (compile fills it from the storyboard)")
        if not clips:
            clips.fa.set_block_style()  # `clips: {}` grows into a normal block
        merge.clips(clips, (base or {}).get("clips"), new, unreadable, (doc, "clips"))
        text = _dump(yaml, doc) if merge.mutated else old_text
    else:
        text = _dump(yaml, _fresh(root, path, new, context))
        result.changes.extend(f"{clip_id}: added" for clip_id in new)
    result.text = text
    result.diff = "".join(difflib.unified_diff(old_text.splitlines(True), text.splitlines(True),
                                               f"a/{path.name}", f"b/{path.name}"))
    if dry_run:
        return result
    from aivpbuild.fsutil import atomic_write_text

    if text != old_text:
        # The manifest first: after a crash between the two writes, the next compile finds
        # the storyboard's values already in the manifest and only records them.
        atomic_write_text(path, text)
        result.written = True
    old_clips = (base or {}).get("clips") or {}
    remembered = {"context": context,
                  "clips": {**{c: old_clips[c] for c in unreadable if c in old_clips}, **new}}
    if base is None or _canon(remembered) != _canon(base):
        atomic_write_text(base_path, "# what `aivpbuild compile` last wrote (for merging)\n"
                          + _dump(_ruamel(), _node(remembered)))
    return result


def _storyboard_dir(root: Path, given: Path | None) -> Path:
    board = root / DEFAULT_STORYBOARD if given is None else Path(given)
    if not board.is_absolute() and not board.is_dir():
        board = root / board  # --storyboard DIR: relative to the working directory or project
    if not board.is_dir():
        raise ManifestError(f"storyboard directory {board} does not exist",
                            hint="pass --storyboard DIR, or put shots in "
                            "storyboard/storyboard-final/shots/shot-01.md")
    return board


def _load_base(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("clips", {}), dict):
        problems.append(Problem(path, None, "unreadable record of the last compile; every "
                                "manifest value that differs from the storyboard counts as a "
                                "hand edit this time"))
        return None
    return data


def _load_manifest(yaml: Any, text: str, path: Path) -> Any:
    from ruamel.yaml.error import MarkedYAMLError

    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ManifestError(f"{where}: YAML syntax error: {exc.problem}",
                            hint="fix the manifest by hand, then compile again") from None
    if not hasattr(doc, "insert"):
        raise ManifestError(f"{path}:1:1: the manifest must be a mapping",
                            hint="move it away and compile again to start a fresh one")
    return doc


def _merge_context(doc: Any, base: Mapping[str, Any] | None, context: dict[str, str],
                   merge: _Merge) -> None:
    from ruamel.yaml.comments import CommentedMap

    old = (base or {}).get("context") or {}
    if not context and not old:
        return
    if "context" not in doc:
        if old or not context:
            return  # the user deleted it
        keys = list(doc)
        position = keys.index("clips") if "clips" in keys else len(keys)
        _insert(doc, position, "context", _node(dict(context)))
        merge.mutated = True
        merge.result.changes.extend(f"context.{key}: added" for key in context)
    elif isinstance(doc["context"], CommentedMap):
        merge.fields(doc["context"], list(dict.fromkeys([*context, *old])), old, context,
                     "context", (doc, "context"))


def _fresh(root: Path, path: Path, clips: Mapping[str, Any], context: Mapping[str, str]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    doc = CommentedMap()
    doc["version"] = 1
    doc["name"] = _node(root.resolve().name or "film")
    doc["defaults"] = _node(FRESH_DEFAULTS, "defaults")
    if context:
        doc["context"] = _node(dict(context))
    doc["clips"] = CommentedMap((clip_id, _node(fields)) for clip_id, fields in clips.items())
    doc["edit"] = _node({"output": "video/final.mp4"}, "edit")
    if (schema := _schema_path(root, path)) is not None:
        doc.yaml_set_start_comment(f"yaml-language-server: $schema={schema}")
    return doc


def _schema_path(root: Path, manifest: Path) -> str | None:
    name = "project.aivp.schema.json"
    resolved = root.resolve()
    candidates = [resolved / "schemas" / name, resolved / ".aivp" / name]
    candidates += [parent / "schemas" / name for parent in resolved.parents]
    for candidate in candidates:
        if candidate.is_file():
            return Path(os.path.relpath(candidate, manifest.resolve().parent)).as_posix()
    return None


# ----------------------------------------------------------------------------- checks
def check_project(root: Path, manifest_clips: Mapping[str, Mapping[str, Any]] | None = None, *,
                  storyboard_dir: Path | None = None, context: Mapping[str, Any] | None = None,
                  manifest: Path | None = None, keyframes: bool = True) -> list[Problem]:
    """Warnings about inputs the build will miss: keyframes (said once per clip), portraits of
    every @Character, a sheet for every scene, durations that disagree, unplanned keyframes.
    ``keyframes=False`` leaves out the per-clip file checks (``status`` has the plan's notices)."""
    root = Path(root)
    board = Path(storyboard_dir) if storyboard_dir else root / DEFAULT_STORYBOARD
    if not board.is_absolute() and not board.is_dir():
        board = root / board
    problems: list[Problem] = []
    shots: list[Shot] = []
    if board.is_dir():
        shots, problems = parse_storyboard(board)
    elif manifest_clips is None:
        return []
    resolve = resolver(shots)
    expected = {s.clip_id: clip_fields(s, resolve) for s in shots}
    clips = manifest_clips if manifest_clips is not None else expected
    source = manifest or next((root / n for n in MANIFEST_NAMES if (root / n).is_file()),
                              root / MANIFEST_NAMES[0])
    by_id = {s.clip_id: s for s in shots}
    reported: set[str] = set()  # portraits already named (by the shot check, with a hint)
    per_shot = [p for shot in shots for p in _shot_problems(root, shot, context or {}, reported)]
    for clip_id, clip in clips.items() if keyframes else ():
        shot = by_id.get(clip_id)
        where = shot.path if shot else source
        problems.extend(_keyframe_problems(root, clip_id, clip, where, reported))
    problems.extend(per_shot)
    problems.extend(_plan_problems(board, shots, {c: clips.get(c, {}) for c in by_id}))
    return problems


def _get(clip: Any, name: str) -> Any:
    return clip.get(name) if isinstance(clip, Mapping) else getattr(clip, name, None)


def _keyframe_problems(root: Path, clip_id: str, clip: Any, where: Path,
                       reported: set[str]) -> list[Problem]:
    image, end_image, mode = _get(clip, "image"), _get(clip, "end_image"), _get(clip, "mode")
    missing = [p for p in (image, end_image) if isinstance(p, str) and not (root / p).exists()]
    out: list[Problem] = []
    if image in missing:
        files = " and ".join(missing)
        if mode == "i2v":
            out.append(Problem(where, None, f"{clip_id}: {files} missing — the clip pins "
                               "mode: i2v, so its build will fail until the keyframe exists",
                               "error"))
        else:
            out.append(Problem(where, None, f"{clip_id}: {files} missing — will fall back to "
                               "text-to-video"))
    elif missing:
        out.append(Problem(where, None, f"{clip_id}: {end_image} missing — the clip will use "
                           "its first keyframe only"))
    for ref in _get(clip, "refs") or []:
        if isinstance(ref, str) and not (root / ref).exists() and ref not in reported:
            reported.add(ref)
            out.append(Problem(where, None, f"{clip_id}: reference image {ref} is missing; the "
                               "build needs it (add the file or drop it from refs)"))
    return out


def _shot_problems(root: Path, shot: Shot, context: Mapping[str, Any],
                   reported: set[str]) -> list[Problem]:
    out: list[Problem] = []
    for person in shot.characters:
        ref = portrait(person.name, person.angle)
        if ref in reported or (root / ref).exists():
            continue
        reported.add(ref)
        slug = Path(ref).name.rsplit("-", 1)[0]
        others = sorted(p.name for p in (root / "image" / "characters").glob(f"{slug}-*.png"))
        hint = f" (there is {', '.join(others)}: change the Portrait Angle?)" if others else ""
        out.append(Problem(shot.path, person.line, f"{shot.clip_id}: @{person.name} has no "
                           f"portrait {ref}{hint}"))
    pattern = context.get("scenes") if isinstance(context.get("scenes"), str) else None
    if shot.scene:
        sheets = {p.stem.lower() for p in root.glob(pattern or SHEET_GLOBS["scenes"])}
        if shot.scene.lower() not in sheets:
            folder = Path(pattern or SHEET_GLOBS["scenes"]).parent.as_posix()
            out.append(Problem(shot.path, shot.lines.get("scene"), f"{shot.clip_id}: scene "
                               f"{shot.scene!r} has no sheet {folder}/{shot.scene}.md"))
    if shot.duration and shot.metadata_duration and shot.duration != shot.metadata_duration:
        out.append(Problem(shot.path, shot.lines.get("duration"), f"{shot.clip_id}: Metadata says "
                           f"{shot.metadata_duration:g}s but the video section says "
                           f"{shot.duration:g}s; compile uses {shot.duration:g}s"))
    return out


def _plan_problems(board: Path, shots: Sequence[Shot], clips: Mapping[str, Any]
                   ) -> list[Problem]:
    path = board / "frame-plan.md"
    if not path.is_file():
        return []
    plan, problems = parse_frame_plan(path)
    if plan is None:
        return problems
    planned = {(f.scene_shot, f.which) for f in plan.frames}
    for shot in shots:
        clip = clips.get(shot.clip_id) or {}
        for role, which in (("image", "first"), ("end_image", "last")):
            value = _get(clip, role)
            own = f"image/frames/{shot.clip_id}-{'ff' if which == 'first' else 'lf'}.png"
            if value == own and shot.scene_shot and (shot.scene_shot, which) not in planned:
                problems.append(Problem(path, None, f"{shot.clip_id}: no {which}-frame entry "
                                        f"for Shot {shot.scene_shot} in the frame plan"))
    return problems


# ----------------------------------------------------------------------------- command
@dataclass
class CompileReport:
    """What ``aivpbuild compile`` did: the merge (None for ``--check``) and every problem."""

    root: Path
    result: CompileResult | None
    problems: list[Problem]

    def describe(self, problem: Problem) -> str:
        """``file:line: severity: message`` with the file relative to the project."""
        return describe_problem(problem, self.root)


def describe_problem(problem: Problem, root: Path) -> str:
    path = problem.file
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(root.resolve())
    where = f"{path.as_posix()}:{problem.line}" if problem.line else path.as_posix()
    return f"{where}: {problem.severity}: {problem.message}"


def compile_storyboard(root: Path | str, *, storyboard_dir: Path | str | None = None,
                       manifest: Path | str | None = None, dry_run: bool = False,
                       check: bool = False, strict: bool = False) -> CompileReport:
    """``aivpbuild compile``: merge the storyboard into the manifest (``dry_run``: write
    nothing), then check inputs; ``check`` only checks. With ``strict`` any problem is a
    ManifestError and nothing is written. The manifest need not exist yet."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"project directory {root} does not exist", hint="check -C DIR")
    board = _storyboard_dir(root, Path(storyboard_dir) if storyboard_dir else None)
    path = root / manifest if manifest else None
    if check:
        problems = _checks(root, board, path, None)
        _refuse_if_strict(strict, problems, "the checks found problems")
        return CompileReport(root, None, problems)
    result = compile_project(root, storyboard_dir=board, manifest=path,
                             dry_run=dry_run or strict, strict=strict)
    problems = _merge_problems(result.problems, _checks(root, board, result.manifest, result.text))
    _refuse_if_strict(strict, problems, "compile found problems")
    if strict and not dry_run:
        result = compile_project(root, storyboard_dir=board, manifest=path)
    return CompileReport(root, result, problems)


def _checks(root: Path, board: Path, manifest: Path | None, text: str | None) -> list[Problem]:
    """check_project against the manifest's clips (``text``, else the file) when there is one."""
    if manifest is None:
        manifest = next((root / n for n in MANIFEST_NAMES if (root / n).is_file()), None)
    if text is None and manifest is not None and manifest.is_file():
        text = manifest.read_text(encoding="utf-8")
    clips, context = _clips_and_context(text)
    return check_project(root, clips, storyboard_dir=board, context=context, manifest=manifest)


def _clips_and_context(text: str | None) -> tuple[Mapping[str, Any] | None, Mapping[str, Any]]:
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if text else None
    except yaml.YAMLError:
        data = None  # the build reports the manifest's own errors; check the storyboard alone
    if not isinstance(data, dict) or not isinstance(data.get("clips"), dict):
        return None, {}
    clips = {str(k): v for k, v in data["clips"].items() if isinstance(v, dict)}
    context = data.get("context")
    return clips, context if isinstance(context, dict) else {}


def _merge_problems(first: list[Problem], second: list[Problem]) -> list[Problem]:
    return first + [p for p in second if p not in first]


def _refuse_if_strict(strict: bool, problems: list[Problem], what: str) -> None:
    if strict and problems:
        listed = "\n".join(f"  {p}" for p in problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise ManifestError(f"{what} (--strict; nothing written):\n{listed}{more}",
                            hint="fix them, or run without --strict to treat them as warnings")


def status_warnings(root: Path, manifest: Path) -> list[str]:
    """The storyboard checks ``status`` prints (keyframe fallbacks are the plan's notices).
    The manifest is read as plain YAML: the plan already validated it, and pydantic is slow
    to import."""
    clips, context = _clips_and_context(manifest.read_text(encoding="utf-8"))
    problems = check_project(root, clips or {}, storyboard_dir=root / DEFAULT_STORYBOARD,
                             context=context, manifest=manifest, keyframes=False)
    return [describe_problem(p, root) for p in problems]
