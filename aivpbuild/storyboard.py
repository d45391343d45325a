"""Storyboard markdown → shot specs: ``shots/shot-NN.md`` and ``frame-plan.md``, read leniently.

Headings, tables, labels and their order vary (and are often partly Chinese), sections go
missing, files get truncated. Every problem becomes a :class:`Problem` naming the file and
line; a file that cannot be understood at all yields no shot, and the others carry on.
The markdown structure comes from markdown-it-py (the ``compile`` extra).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aivpbuild.errors import ConfigError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """Something wrong or doubtful in an input file."""

    file: Path
    line: int | None
    message: str
    severity: Severity = "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class ModelPrompt:
    """One model's prompt block from the video section."""

    model: str  # as written, e.g. "Seedance 2.0"
    family: str  # slug, e.g. "seedance"
    text: str
    primary: bool
    line: int


@dataclass(frozen=True)
class ShotCharacter:
    """A row of the Characters table."""

    name: str  # without the "@"
    angle: str  # front | side | back
    line: int
    first_frame: str | None = None
    last_frame: str | None = None
    facing: str | None = None


@dataclass(frozen=True)
class Shot:
    """Everything read from one shot file; ``lines`` maps each field to its source line."""

    clip_id: str
    path: Path
    scene_shot: str | None = None
    scene: str | None = None
    camera_position: str | None = None  # Metadata "Camera": position, size, angle
    variation: str | None = None
    emotion: str | None = None
    is_primary: bool | None = None
    metadata_duration: float | None = None
    metadata_aspect_ratio: str | None = None
    characters: tuple[ShotCharacter, ...] = ()
    first_frame: str | None = None
    last_frame: str | None = None
    motion: str | None = None
    dialogue: tuple[str, ...] = ()
    bgm: str | None = None
    sfx: str | None = None
    keyframe_prompts: dict[str, str] = field(default_factory=dict)
    prompts: tuple[ModelPrompt, ...] = ()
    input_frames: str | None = None
    duration: float | None = None  # from the video section
    aspect_ratio: str | None = None  # from the video section
    camera_mode: str | None = None  # "fixed" / "unfixed"
    camera_setting: str | None = None  # Parameters "Camera:" line
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def primary_prompt(self) -> ModelPrompt | None:
        marked = [p for p in self.prompts if p.primary]
        return marked[0] if marked else (self.prompts[0] if self.prompts else None)


@dataclass(frozen=True)
class PlannedFrame:
    """One ``#### Frame K — Shot 1.2 first-frame`` entry of the frame plan."""

    scene_shot: str
    which: Literal["first", "last"]
    line: int
    number: int | None = None
    priority: int | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FramePlan:
    path: Path
    title: str | None
    summary: dict[str, str]
    frames: tuple[PlannedFrame, ...]


# ----------------------------------------------------------------------------- reading
@functools.cache
def _markdown() -> Any:
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        raise ConfigError(
            "reading storyboard markdown needs markdown-it-py",
            hint="pip install 'aivpbuild[compile]'",
        ) from None
    # No indented code blocks: hand-edited files indent tables and labels by accident.
    return MarkdownIt("commonmark").enable("table").disable("code")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def read_text(path: Path) -> tuple[str | None, list[Problem]]:
    """The file as clean text (BOM, CRLF and control characters removed), or a problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [Problem(path, None, f"cannot read the file: {exc.strerror}", "error")]
    if not data.strip():
        return None, [Problem(path, None, "the file is empty", "error")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [Problem(path, line, "not UTF-8 text (a binary or wrongly encoded file?); "
                              "save it as UTF-8", "error")]
    if text.count("\x00") or len(_CONTROL.findall(text)) > max(8, len(text) // 50):
        return None, [Problem(path, None, "looks like binary data, not markdown", "error")]
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text, []


@dataclass
class Block:
    """A top-level markdown block with its 1-based source line."""

    kind: str  # heading | para | quote | fence | bullets | table | hr
    line: int
    text: str = ""
    level: int = 0
    items: list[tuple[str, int]] = field(default_factory=list)  # bullets: (text, line)
    rows: list[tuple[list[str], int]] = field(default_factory=list)  # table body rows
    header: list[str] = field(default_factory=list)


def _closing(tokens: list[Any], i: int) -> int:
    opener = tokens[i]
    close = opener.type.replace("_open", "_close")
    for j in range(i + 1, len(tokens)):
        if tokens[j].type == close and tokens[j].level == opener.level:
            return j
    return len(tokens) - 1


def _line(token: Any, shift: list[int]) -> int:
    raw = (token.map[0] if token.map else 0) + 1
    return raw - sum(1 for s in shift if s < raw)


def parse_blocks(text: str, path: Path) -> tuple[list[Block], list[Problem]]:
    """Blocks in document order; an unclosed code fence is closed at the next label/heading."""
    md = _markdown()
    problems: list[Problem] = []
    shift: list[int] = []  # 1-based lines where a closing fence was inserted
    for _ in range(20):
        tokens = md.parse(text)
        lines = text.split("\n")
        fix = _unclosed_fence(tokens, lines)
        if fix is None:
            break
        start, insert_at = fix
        orig_start = start + 1 - sum(1 for s in shift if s <= start)
        problems.append(Problem(path, orig_start, "code fence is never closed; assumed it ends "
                                "before the next heading or bold label (add a closing ```)"))
        marker = re.match(r"\s*(`{3,}|~{3,})", lines[start])
        lines.insert(insert_at, marker.group(1) if marker else "```")
        shift.append(insert_at + 1)
        text = "\n".join(lines)
    return _to_blocks(tokens, shift), problems


_STRUCTURE = re.compile(r"\s{0,3}(#{1,6}\s|\*\*[^*]+\*\*|---\s*$)")


def _unclosed_fence(tokens: list[Any], lines: list[str]) -> tuple[int, int] | None:
    """(fence line, where to close it) for the first fence left open, or swallowing a heading
    or bold label (its closer was then really the next fence's opener)."""
    for tok in tokens:
        if tok.type != "fence" or not tok.map:
            continue
        start, end = tok.map
        last = lines[end - 1].strip() if end - 1 < len(lines) else ""
        closed = end - 1 > start and last.startswith(tok.markup) and not last.strip(tok.markup[0])
        inner = next((k for k in range(start + 1, end - 1 if closed else len(lines))
                      if _STRUCTURE.match(lines[k])), None)
        if closed and inner is None:
            continue
        stop = inner if inner is not None else len(lines)
        while stop > start + 1 and not lines[stop - 1].strip():
            stop -= 1
        return start, stop
    return None


def _to_blocks(tokens: list[Any], shift: list[int]) -> list[Block]:
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind == "heading_open":
            blocks.append(Block("heading", _line(tok, shift), tokens[i + 1].content.strip(),
                                level=int(tok.tag[1:])))
            i += 3
            continue
        if kind == "fence":
            blocks.append(Block("fence", _line(tok, shift), tok.content.strip("\n"), level=0))
        elif kind == "hr":
            blocks.append(Block("hr", _line(tok, shift)))
        elif kind in ("paragraph_open", "html_block"):
            inline = tokens[i + 1] if kind == "paragraph_open" else tok
            blocks.append(Block("para", _line(tok, shift), inline.content))
        elif kind in ("blockquote_open", "bullet_list_open", "ordered_list_open", "table_open"):
            j = _closing(tokens, i)
            blocks.append(_container(tok, tokens[i + 1 : j], shift))
            i = j
        i += 1
    return blocks


def _container(opener: Any, inner: list[Any], shift: list[int]) -> Block:
    line = _line(opener, shift)
    if opener.type == "blockquote_open":
        parts = [t.content for t in inner if t.type in ("inline", "fence")]
        return Block("quote", line, "\n".join(p.strip("\n") for p in parts))
    if opener.type == "table_open":
        block = Block("table", line)
        in_head = False
        row: list[str] = []
        row_line = line
        for t in inner:
            if t.type in ("thead_open", "thead_close"):
                in_head = t.type == "thead_open"
            elif t.type == "tr_open":
                row, row_line = [], _line(t, shift)
            elif t.type == "inline":
                row.append(t.content.strip())
            elif t.type == "tr_close":
                if in_head:
                    block.header = row
                else:
                    block.rows.append((row, row_line))
        return block
    block = Block("bullets", line)
    for t in inner:
        if t.type == "inline":
            block.items.append((t.content, _line(t, shift)))
    return block


# ----------------------------------------------------------------------------- vocabulary
def norm(text: str) -> str:
    """Lower-case words only: full-width forms folded, markup and punctuation dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w]+", " ", text.replace("_", " ")).split())


_SECTION_WORDS: list[tuple[str, tuple[str, ...]]] = [
    ("first", ("first frame", "start frame", "首帧", "起始帧")),
    ("last", ("last frame", "end frame", "final frame", "尾帧", "末帧", "结束帧")),
    ("metadata", ("metadata", "meta data", "元数据", "基本信息", "镜头信息")),
    ("characters", ("characters", "character", "cast", "角色", "人物")),
    ("decomposition", ("decomposition", "breakdown", "分解")),
    ("image", ("aivp image", "for image", "image prompts", "keyframe prompts", "关键帧", "图像")),
    ("video", ("aivp video", "for video", "video", "视频")),
    ("clipgen", ("clip generation", "generation", "生成")),
    ("parameters", ("parameters", "params", "settings", "参数")),
    ("motion", ("motion", "运动", "动作", "运镜")),
    ("audio", ("audio", "sound", "音频", "声音", "音效")),
]


def section_kind(title: str) -> str | None:
    t = norm(title)
    if re.fullmatch(r"(shot|镜头|分镜)\s*\d+(\s\d+)*\b.*", t):
        return "shot"
    for kind, words in _SECTION_WORDS:
        if any(w in t for w in words):
            return kind
    return None


_LABELS: dict[str, str] = {
    "shot id": "shot_id", "shot": "shot_id", "shot number": "shot_id", "shot no": "shot_id",
    "镜头编号": "shot_id", "镜号": "shot_id", "编号": "shot_id",
    "scene": "scene", "scene slug": "scene", "场景": "scene",
    "camera": "camera", "机位": "camera", "镜头": "camera", "运镜": "camera",
    "variation": "variation", "变化": "variation", "变化幅度": "variation",
    "duration": "duration", "length": "duration", "时长": "duration",
    "emotion": "emotion", "mood": "emotion", "情绪": "emotion",
    "is primary": "is_primary", "primary": "is_primary",
    "aspect ratio": "aspect_ratio", "aspect": "aspect_ratio", "ratio": "aspect_ratio",
    "画幅": "aspect_ratio", "宽高比": "aspect_ratio", "画面比例": "aspect_ratio",
    "input frames": "input_frames", "input frame": "input_frames", "frames": "input_frames",
    "输入帧": "input_frames", "参考帧": "input_frames",
    "camera mode": "camera_mode", "camera fixed": "camera_mode", "镜头模式": "camera_mode",
    "motion prompt": "prompt", "prompt": "prompt", "video prompt": "prompt",
    "提示词": "prompt", "运动提示词": "prompt", "视频提示词": "prompt",
    "parameters": "parameters", "params": "parameters", "参数": "parameters",
    "dialogue": "dialogue", "dialog": "dialogue", "对白": "dialogue", "台词": "dialogue",
    "对话": "dialogue", "bgm": "bgm", "music": "bgm", "音乐": "bgm", "配乐": "bgm",
    "sfx": "sfx", "sound effects": "sfx", "effects": "sfx", "音效": "sfx",
}

_BOLD_LINE = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)\s*(?P<label>[^*_]+?)\s*[:：]?\s*(?:\*\*|__)\s*(?P<rest>.*)$"
)
_PLAIN_LINE = re.compile(r"^\s*(?:[-*+]\s+)?(?P<label>[^:：|]{1,40}?)\s*[:：]\s*(?P<rest>.*)$")


def label_line(line: str, *, plain: bool = False) -> tuple[str, str] | None:
    """``**Label**: value`` (or ``Label: value`` when ``plain``) → (label words, value)."""
    m = _BOLD_LINE.match(line) or (_PLAIN_LINE.match(line) if plain else None)
    if not m:
        return None
    rest = m.group("rest").strip()
    if rest[:1] in (":", "："):
        rest = rest[1:].strip()
    return norm(m.group("label")), rest


def seconds(text: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)", unicodedata.normalize("NFKC", text))
    return float(m.group(1)) if m and float(m.group(1)) > 0 else None


def aspect(text: str) -> str | None:
    m = re.search(r"(\d{1,3})\s*[:x×/]\s*(\d{1,3})", unicodedata.normalize("NFKC", text))
    return f"{int(m.group(1))}:{int(m.group(2))}" if m and int(m.group(2)) else None


def is_none(text: str | None) -> bool:
    t = norm(text or "")
    return t in ("", "none", "n a", "na", "no", "no dialogue", "silent", "nothing", "无", "没有",
                 "无对白") or "not required" in t or "不需要" in t


_FAMILY_ALIASES = {"可灵": "kling", "即梦": "seedance", "海螺": "hailuo", "万相": "wan",
                   "通义万相": "wan"}
_NOT_MODELS = {"clip", "generation", "parameters", "params", "settings", "notes", "note", "input",
               "frames", "camera", "video", "aivp", "for", "shot", "prompt", "motion", "first",
               "last", "format", "primary", "fallback", "audio"}


def model_label(text: str) -> tuple[str, str, bool] | None:
    """"Seedance 2.0 (Primary)" / "(Kling 3.0 format — fallback):" → (name, family, primary)."""
    t = unicodedata.normalize("NFKC", text)
    primary = bool(re.search(r"primary|主要|首选|主模型", t, re.I))
    t = re.sub(r"(?i)\b(motion prompt|prompt|primary|fallback|secondary|backup|alternative|"
               r"alt|format|model)\b|主要|首选|备选|备用|格式", " ", t)
    name = " ".join(re.sub(r"[()\[\]:：—–]+|(?<!\w)-(?!\w)|\s-\s", " ", t).split()).strip(" -")
    if not name:
        return None
    first = name.split()[0].lower()
    family = _FAMILY_ALIASES.get(first) or (re.match(r"[a-z]+", first) or [""])[0]
    if not family or family in _NOT_MODELS:
        return None
    return name, family, primary


# ----------------------------------------------------------------------------- sections
@dataclass
class Section:
    level: int
    title: str
    line: int
    kind: str | None
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)

    def walk(self) -> Iterator[Section]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all_blocks(self) -> Iterator[Block]:
        """This section's blocks and its subsections' (headings included), in order."""
        yield from self.blocks
        for child in self.children:
            yield Block("heading", child.line, child.title, level=child.level)
            yield from child.all_blocks()


def section_tree(blocks: list[Block]) -> Section:
    root = Section(0, "", 1, None)
    stack = [root]
    for block in blocks:
        if block.kind == "heading":
            while len(stack) > 1 and stack[-1].level >= block.level:
                stack.pop()
            section = Section(block.level, block.text, block.line, section_kind(block.text))
            stack[-1].children.append(section)
            stack.append(section)
        else:
            stack[-1].blocks.append(block)
    return root


def table_rows(section: Section, path: Path, problems: list[Problem]
               ) -> tuple[list[str], list[tuple[list[str], int]]]:
    """Header and body rows of the section's first table; pipe lines without a separator row
    are read too (with a warning)."""
    for block in section.blocks:
        if block.kind == "table":
            return [norm(h) for h in block.header], block.rows
    for block in section.blocks:
        lines = block.text.split("\n") if block.kind == "para" else []
        if lines and all(ln.strip().startswith("|") for ln in lines if ln.strip()):
            problems.append(Problem(path, block.line, f"the table under '{section.title}' has no "
                                    "|---| separator row; read it anyway"))
            rows = [([c.strip() for c in ln.strip().strip("|").split("|")], block.line + k)
                    for k, ln in enumerate(lines) if ln.strip()]
            rows = [r for r in rows if not all(re.fullmatch(r":?-*:?", c) for c in r[0])]
            return ([norm(c) for c in rows[0][0]], rows[1:]) if rows else ([], [])
    return [], []


def quote_text(section: Section) -> str | None:
    """The section's blockquote text, else its paragraph text."""
    for kinds in (("quote",), ("para", "fence")):
        parts = [b.text.strip() for b in section.blocks if b.kind in kinds and b.text.strip()]
        if parts:
            return "\n".join(parts)
    return None


# ----------------------------------------------------------------------------- shot files
_ANGLES = {"front": "front", "frontal": "front", "正面": "front", "side": "side",
           "profile": "side", "侧面": "side", "back": "back", "rear": "back", "背面": "back",
           "three quarter": "front", "3 4": "front"}


class _ShotReader:
    """Fills the fields of one :class:`Shot` from its section tree."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        self.values: dict[str, Any] = {"lines": {}}
        self.prompts: list[ModelPrompt] = []

    def warn(self, line: int | None, message: str, severity: Severity = "warning") -> None:
        self.problems.append(Problem(self.path, line, message, severity))

    def set(self, name: str, value: Any, line: int, label: str = "") -> None:
        """Record a field; a second, different value is reported and ignored."""
        if value is None:
            return
        if name in self.values:
            if self.values[name] != value:
                first = self.values["lines"].get(name)
                self.warn(line, f"{label or name} {value!r} disagrees with {self.values[name]!r} "
                          f"(line {first}); using the first")
            return
        self.values[name] = value
        self.values["lines"][name] = line

    # -- sections
    def read(self, root: Section) -> None:
        self._visit(root, None)

    def _visit(self, section: Section, context: str | None) -> None:
        kind = section.kind
        if context == "video" and section.level:
            self._video(section)
            return
        handler = {"shot": self._heading, "metadata": self._metadata,
                   "characters": self._characters, "audio": self._audio,
                   "video": self._video, "image": self._image_section}.get(kind or "")
        if kind in ("first", "last", "motion") and context != "image":
            text = quote_text(section)
            key = {"first": "first_frame", "last": "last_frame", "motion": "motion"}[kind]
            if text and not (kind == "last" and is_none(text)):
                self.set(key, text, section.line, section.title)
        elif handler is not None:
            handler(section)
            if kind in ("video", "image"):
                return
        for child in section.children:
            self._visit(child, kind if kind in ("decomposition", "image", "video") else context)

    def _heading(self, section: Section) -> None:
        m = re.search(r"(\d+(?:\.\d+)*)", unicodedata.normalize("NFKC", section.title))
        if m:
            self.set("scene_shot", m.group(1), section.line, "shot number")

    def _pairs(self, section: Section) -> Iterator[tuple[str, str, int]]:
        """(label, value, line) from a two-column table, or from labelled lines and bullets."""
        header, rows = table_rows(section, self.path, self.problems)
        for cells, line in rows:
            if len(cells) >= 2 and cells[0].strip():
                yield norm(cells[0]), cells[1].strip(), line
        if header or rows:
            return
        for block in section.blocks:
            texts = block.items if block.kind == "bullets" else [(block.text, block.line)]
            for text, line in texts:
                for k, ln in enumerate(text.split("\n")):
                    if (pair := label_line(ln, plain=True)) is not None:
                        yield pair[0], pair[1], line + k

    def _metadata(self, section: Section) -> None:
        found = False
        for label, value, line in self._pairs(section):
            found = True
            key = _LABELS.get(label)
            value = value.strip("`* ")
            if not value or key is None:
                continue
            if key == "shot_id":
                m = re.search(r"\d+(?:\.\d+)*", value)
                self.set("scene_shot", m.group(0) if m else value, line, "Shot ID")
            elif key == "scene":
                self.set("scene", value.lower().replace(" ", "-"), line, "Scene")
            elif key == "camera":
                self.set("camera_position", value, line, "Camera")
            elif key == "variation":
                self.set("variation", norm(value) or None, line, "Variation")
            elif key == "duration":
                self._seconds("metadata_duration", value, line)
            elif key == "emotion":
                self.set("emotion", value, line, "Emotion")
            elif key == "is_primary":
                self.set("is_primary", norm(value) in ("true", "yes", "y", "1", "是"), line)
            elif key == "aspect_ratio":
                self.set("metadata_aspect_ratio", aspect(value), line, "Aspect ratio")
        if not found:
            self.warn(section.line, f"'{section.title}' has no table; expected "
                      "| Field | Value | rows such as | Scene | rooftop-night |")

    def _seconds(self, name: str, value: str, line: int) -> None:
        secs = seconds(value)
        if secs is None:
            self.warn(line, f"duration {value!r} is not a number of seconds; write e.g. 5s")
        self.set(name, secs, line, "Duration")

    def _characters(self, section: Section) -> None:
        header, rows = table_rows(section, self.path, self.problems)
        if not rows:  # a bullet list: "- @Mara (side)"
            header = []
            for block in section.blocks:
                for text, line in block.items or [(block.text, block.line)]:
                    words = text.strip().lstrip("-*+ ").split(None, 1)
                    if words and words[0].startswith("@"):
                        rows.append(([words[0], words[1] if len(words) > 1 else ""], line))
            if not rows:
                self.warn(section.line, f"'{section.title}' lists no characters; expected a table "
                          "| Character | First Frame | Last Frame | Portrait Angle |")
                return

        def column(*words: str) -> int | None:
            return next((i for i, h in enumerate(header) if any(w in h for w in words)), None)

        angle_col = column("angle", "portrait", "角度")
        first_col, last_col = column("first", "首帧"), column("last", "尾帧", "末帧")
        facing_col = column("facing", "朝向")
        people: list[ShotCharacter] = []
        for cells, line in rows:
            name = cells[0].strip("`*_ ").lstrip("@").strip() if cells else ""
            if not name or is_none(name):
                continue

            def cell(col: int | None, cells: list[str] = cells) -> str | None:
                return cells[col].strip() or None if col is not None and col < len(cells) else None

            raw_angle = cell(angle_col) or (cells[1] if not header and len(cells) > 1 else "")
            padded = f" {norm(raw_angle or '')} "
            angle = next((v for k, v in _ANGLES.items() if f" {k} " in padded), None)
            if angle is None:
                if raw_angle:
                    self.warn(line, f"@{name}: portrait angle {raw_angle!r} is not front, side "
                              "or back; using front")
                angle = "front"
            people.append(ShotCharacter(name, angle, line, cell(first_col), cell(last_col),
                                        cell(facing_col)))
        self.set("characters", tuple(people), section.line, "Characters")

    def _audio(self, section: Section) -> None:
        lines: list[str] = []
        for label, value, line in self._pairs(section):
            key = _LABELS.get(label)
            if key == "dialogue":
                for part in re.split(r"<br\s*/?>", value):
                    if not is_none(part.strip()):
                        lines.append(part.strip())
                self.values["lines"].setdefault("dialogue", line)
            elif key in ("bgm", "sfx") and not is_none(value):
                self.set(key, value, line, label)
        if lines:
            self.values["dialogue"] = tuple(lines)

    def _image_section(self, section: Section) -> None:
        prompts: dict[str, str] = {}
        pending: str | None = None
        for block in section.all_blocks():
            if block.kind == "heading":
                pending = {"first": "first", "last": "last"}.get(section_kind(block.text) or "")
            elif block.kind == "para" and (pair := label_line(block.text.split("\n")[0])):
                pending = {"first": "first", "last": "last"}.get(section_kind(pair[0]) or "")
                if pending and pair[1]:
                    prompts.setdefault(pending, pair[1])
                    pending = None
            elif block.kind in ("fence", "quote") and pending and block.text.strip():
                prompts.setdefault(pending, block.text.strip())
                pending = None
        if prompts:
            self.set("keyframe_prompts", prompts, section.line)

    # -- the video section
    def _video(self, section: Section) -> None:
        current: tuple[str, str, bool, int] | None = None  # model from a heading
        pending: tuple[str, str, bool, int] | None = None  # model from a bold label
        used_heading = False
        own = Block("heading", section.line, section.title, section.level)
        for block in [own, *section.all_blocks()]:
            if block.kind == "heading":
                found = None if section_kind(block.text) in ("clipgen", "parameters", "video") \
                    else model_label(block.text)
                current, used_heading, pending = (
                    (*found, block.line) if found else None), False, None
            elif block.kind in ("para", "bullets"):
                for text, line in block.items or [(block.text, block.line)]:
                    for k, ln in enumerate(text.split("\n")):
                        plain = block.kind == "bullets" or ln.lstrip()[:2] in ("- ", "* ", "+ ")
                        found_model = self._video_label(ln, line + k, plain=plain)
                        if found_model is not None:
                            pending = found_model
            elif block.kind in ("fence", "quote"):
                text = block.text.strip()
                if not text:
                    continue
                model = pending or (current if not used_heading else None)
                if model is None:
                    if pending is None and current is not None:
                        self.warn(block.line, "a second prompt block under one model heading; "
                                  "ignored (give each model its own ### heading)")
                        continue
                    model = ("", "", False, block.line)
                self.prompts.append(ModelPrompt(model[0], model[1], text, model[2], block.line))
                if pending is not None:
                    pending = None
                else:
                    used_heading = True

    def _video_label(self, line_text: str, line: int, *, plain: bool
                     ) -> tuple[str, str, bool, int] | None:
        pair = label_line(line_text, plain=plain)
        if pair is None:
            return None
        label, value = pair
        key = _LABELS.get(label)
        if key is None and label.startswith(("motion prompt", "prompt")):
            key = "prompt"
        if key == "prompt":
            found = model_label(value)
            return (*found, line) if found else ("", "", "primary" in value.lower(), line)
        if key == "input_frames":
            self.set("input_frames", value, line, "Input frames")
        elif key == "duration":
            self._seconds("duration", value, line)
        elif key == "aspect_ratio":
            ratio = aspect(value)
            if ratio is None:
                self.warn(line, f"aspect ratio {value!r} is not W:H; write e.g. 16:9")
            self.set("aspect_ratio", ratio, line, "Aspect ratio")
        elif key == "camera_mode":
            self.set("camera_mode", value, line, "Camera mode")
        elif key == "camera":
            self.set("camera_setting", value, line, "Camera")
        return None


def shot_number(stem: str) -> int | None:
    m = re.fullmatch(r"(?i)shot[-_ ]?(\d+)", stem.strip())
    return int(m.group(1)) if m else None


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def parse_shot(path: Path) -> tuple[Shot | None, list[Problem]]:
    """One shot file → a :class:`Shot` (None when nothing usable is in it) and its problems."""
    clip_id = path.stem.lower()
    if not _ID.match(clip_id):
        return None, [Problem(path, None, f"{path.name!r} does not give a usable clip id; "
                              "name shot files shot-01.md, shot-02.md, ...", "error")]
    text, problems = read_text(path)
    if text is None:
        return None, problems
    blocks, fence_problems = parse_blocks(text, path)
    problems.extend(fence_problems)
    tree = section_tree(blocks)
    reader = _ShotReader(path, problems)
    reader.read(tree)
    values = reader.values
    prompts = _unique_families(reader.prompts, reader)
    if not prompts:
        fallback = values.get("motion") or values.get("first_frame")
        if fallback is None:
            headings = [f"'{s.title}' (line {s.line})" for s in tree.walk() if s.level][:6]
            found = ", ".join(headings) if headings else "no headings"
            problems.append(Problem(path, None, "no prompt: expected a '## For aivp-video' section "
                                    "with a fenced prompt block, or a '### Motion' description "
                                    f"(found {found}); shot skipped", "error"))
            return None, problems
        source = "Motion" if values.get("motion") else "First Frame"
        problems.append(Problem(path, values["lines"].get(source.lower().replace(" ", "_")),
                                f"no prompt block under '## For aivp-video'; using the {source} "
                                "description (and dialogue) as the prompt"))
        text = "\n".join([fallback, *values.get("dialogue", ())])
        prompts = [ModelPrompt("", "", text, True, values["lines"].get("motion", 1))]
    if sum(p.primary for p in prompts) > 1:
        second = [p for p in prompts if p.primary][1]
        problems.append(Problem(path, second.line, "more than one prompt is marked primary; "
                                "using the first"))
    fields = {k: v for k, v in values.items() if k in Shot.__dataclass_fields__}
    return Shot(clip_id=clip_id, path=path, prompts=tuple(prompts), **fields), problems


def _unique_families(prompts: list[ModelPrompt], reader: _ShotReader) -> list[ModelPrompt]:
    seen: dict[str, int] = {}
    out = []
    for p in prompts:
        family = p.family or "prompt"
        seen[family] = seen.get(family, 0) + 1
        if seen[family] > 1:
            reader.warn(p.line, f"a second {p.model or 'unnamed'} prompt block; kept as "
                        f"{family}-{seen[family]}")
            family = f"{family}-{seen[family]}"
        out.append(ModelPrompt(p.model, family if p.family or seen[family] > 1 else "", p.text,
                               p.primary, p.line))
    return out


def shots_dir(storyboard_dir: Path) -> Path:
    """``<dir>/shots`` when it exists, else the directory itself."""
    return storyboard_dir / "shots" if (storyboard_dir / "shots").is_dir() else storyboard_dir


def parse_storyboard(storyboard_dir: Path) -> tuple[list[Shot], list[Problem]]:
    """Every ``shot-NN.md`` in timeline order; a bad file is reported and skipped."""
    folder = shots_dir(storyboard_dir)
    problems: list[Problem] = []
    numbered: list[tuple[int, Path]] = []
    for path in sorted(folder.glob("*.md")):
        number = shot_number(path.stem)
        if number is None:
            if path.name.lower() not in ("frame-plan.md", "storyboard.md", "readme.md"):
                problems.append(Problem(path, None, "not named shot-NN.md; ignored"))
            continue
        numbered.append((number, path))
    numbered.sort(key=lambda item: (item[0], item[1].name))
    shots: list[Shot] = []
    previous: tuple[int, Path] | None = None
    for number, path in numbered:
        if previous is not None and previous[0] == number:
            problems.append(Problem(path, None, f"duplicate shot number {number}: "
                                    f"{previous[1].name} and {path.name}; rename one "
                                    "(this one is skipped)", "error"))
            continue
        if previous is not None and number > previous[0] + 1:
            gap = ", ".join(str(n) for n in range(previous[0] + 1, number))
            problems.append(Problem(path, None, f"shot numbering jumps from {previous[1].stem} to "
                                    f"{path.stem} (no shot {gap})"))
        previous = (number, path)
        shot, found = parse_shot(path)
        problems.extend(found)
        if shot is not None:
            shots.append(shot)
    seen: dict[str, Shot] = {}
    for shot in shots:
        if shot.scene_shot and shot.scene_shot in seen:
            problems.append(Problem(shot.path, shot.lines.get("scene_shot"),
                                    f"shot number {shot.scene_shot} is also used by "
                                    f"{seen[shot.scene_shot].path.name}"))
        elif shot.scene_shot:
            seen[shot.scene_shot] = shot
    if not numbered:
        problems.append(Problem(folder, None, "no shot files (shots/shot-01.md, ...) found",
                                "error"))
    return shots, problems


# ----------------------------------------------------------------------------- frame plan
def parse_frame_plan(path: Path) -> tuple[FramePlan | None, list[Problem]]:
    """``frame-plan.md``: the keyframe generation queue (extra metadata, cross-checks)."""
    text, problems = read_text(path)
    if text is None:
        return None, problems
    blocks, fence_problems = parse_blocks(text, path)
    problems.extend(fence_problems)
    title: str | None = None
    summary: dict[str, str] = {}
    frames: list[PlannedFrame] = []
    priority: int | None = None
    for section in section_tree(blocks).walk():
        t = norm(section.title)
        if section.level == 1 and title is None:
            title = re.sub(r"^.*?[—–:-]\s*", "", section.title).strip() or section.title
        elif "summary" in t or "概要" in t or "汇总" in t:
            _header, rows = table_rows(section, path, problems)
            summary.update({norm(c[0]): c[1].strip() for c, _ in rows if len(c) >= 2})
        elif t.startswith("priority"):
            m = re.search(r"\d+", t)
            priority = int(m.group(0)) if m else None
        elif t.startswith("frame") or "帧" in t:
            t = unicodedata.normalize("NFKC", section.title).lower()
            shot = re.search(r"(?:shot|镜头)\s*(\d+(?:\.\d+)*)", t)
            which: Literal["first", "last"] | None = (
                "last" if re.search(r"\b(last|end)\b|尾帧|末帧", t)
                else "first" if re.search(r"\bfirst\b|首帧", t) else None)
            if shot is None or which is None:
                problems.append(Problem(path, section.line, f"frame entry '{section.title}' does "
                                        "not say 'Shot N.M first-frame' or 'last-frame'"))
                continue
            number = re.match(r"\s*frame\s*(\d+)", t)
            details: dict[str, str] = {}
            for block in section.blocks:
                for item, _line in block.items or [(block.text, block.line)]:
                    for ln in item.split("\n"):
                        if (pair := label_line(ln)) is not None:
                            details.setdefault(pair[0].replace(" ", "_"), pair[1])
            frames.append(PlannedFrame(shot.group(1), which, section.line,
                                       int(number.group(1)) if number else None, priority, details))
    if not frames:
        problems.append(Problem(path, None, "no '#### Frame K — Shot N.M first-frame' entries"))
    return FramePlan(path, title, summary, tuple(frames)), problems
