"""The manifest (``project.aivp.yaml``): pydantic models, value normalisation and loading.

This is the only module that reads the manifest's YAML. Values are normalised on the way in
(``duration: "5s"`` → 5.0, ``fps: 23.976`` → ``"24000/1001"``), unknown keys are errors with a
"did you mean", and every error names the file, line and column of the offending value.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from aivpbuild.catalog import ModelOverride
from aivpbuild.errors import ManifestError
from aivpbuild.fsutil import clean_relative_path
from aivpbuild.media.review_settings import ReviewSettings
from aivpbuild.providers.settings import ProvidersSettings

SCHEMA_PATH = "schemas/project.aivp.schema.json"

_NAMED_RESOLUTIONS = {
    "360p": 360, "480p": 480, "512p": 512, "540p": 540, "576p": 576, "720p": 720, "768p": 768,
    "1080p": 1080, "1440p": 1440, "2160p": 2160, "4k": 2160,
}
_FPS_ALIASES = {"23.976": "24000/1001", "29.97": "30000/1001", "59.94": "60000/1001"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?)?\s*$", re.IGNORECASE)


# ----------------------------------------------------------------------------- value parsing
def parse_duration(value: Any) -> float:
    """``5``, ``"5"``, ``"5s"``, ``"5.5 sec"`` → seconds as a float (0 < d ≤ 600)."""
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds such as 5 or \"5s\"")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1))
    else:
        raise ValueError(f"{value!r} is not a duration; write seconds such as 5 or \"5s\"")
    if not 0 < seconds <= 600:
        raise ValueError(f"{seconds:g} s is out of range; use more than 0 and at most 600 seconds")
    return seconds


def parse_fps(value: Any) -> str:
    """``24``, ``"23.976"``, ``"24000/1001"`` → a canonical fraction string."""
    text = str(value).strip()
    text = _FPS_ALIASES.get(text, text)
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{value!r} is not a frame rate; use e.g. 24, 25, 30 or 23.976") from None
    if isinstance(value, float) and fps.denominator > 1000:
        fps = fps.limit_denominator(1001)
    if not 1 <= fps <= 120:
        raise ValueError(f"{value!r} fps is out of range; use 1 to 120")
    return str(fps)


def parse_aspect_ratio(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"got the number {value}: YAML reads an unquoted ratio like 16:9 as a base-60 number; "
            'quote it: aspect_ratio: "16:9"'
        )
    m = re.fullmatch(r"\s*(\d{1,3})\s*:\s*(\d{1,3})\s*", str(value))
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError(f"{value!r} is not an aspect ratio; write it as \"16:9\", \"9:16\" or \"1:1\"")
    w, h = int(m.group(1)), int(m.group(2))
    if not 0.2 <= w / h <= 5:
        raise ValueError(f"{value!r} is too extreme; use a ratio between 1:5 and 5:1")
    return f"{w}:{h}"


def parse_resolution(value: Any) -> str:
    """``"720p"``, ``"4K"``, ``720`` or ``"1280x720"`` (even sizes only)."""
    text = str(value).strip().lower()
    if text.isdigit():
        text += "p"
    if text in _NAMED_RESOLUTIONS:
        return text
    m = re.fullmatch(r"(\d{2,5})\s*[x×]\s*(\d{2,5})", text)
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        if w % 2 or h % 2:
            raise ValueError(
                f"{w}x{h} has an odd side; H.264 yuv420p needs even sizes, e.g. "
                f"{w + w % 2}x{h + h % 2}"
            )
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise ValueError(f"{w}x{h} is out of range (16 to 8192 pixels a side)")
        return f"{w}x{h}"
    names = ", ".join(k for k in _NAMED_RESOLUTIONS if k != "2160p")
    raise ValueError(f"{value!r} is not a resolution; use one of {names} or WIDTHxHEIGHT")


def output_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size for a resolution and aspect ratio; the short side is the ``p`` number."""
    if "x" in resolution:
        w, h = resolution.split("x")
        return int(w), int(h)
    short = _NAMED_RESOLUTIONS[resolution]
    aw, ah = (int(x) for x in aspect_ratio.split(":"))
    if aw >= ah:
        return _even(short * aw / ah), short
    return short, _even(short * ah / aw)


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


# ----------------------------------------------------------------------------- models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameRef(_Strict):
    """A keyframe taken from another clip's output: ``{clip: shot-01, frame: last}``."""

    clip: str = Field(description="Id of the clip to take the frame from.")
    frame: Literal["first", "last"] = Field(description="Which frame of that clip.")


def _check_path(value: str) -> str:
    problem = clean_relative_path(value)
    if problem:
        raise ValueError(f"path {value!r} {problem}")
    return value.replace("\\", "/")


# What editors should accept: the written forms, before normalisation.
_NUMBER_OR_TEXT = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
Seconds = Annotated[float | None, WithJsonSchema({**_NUMBER_OR_TEXT, "examples": [5, "5s"]})]
FrameRate = Annotated[str | None, WithJsonSchema({**_NUMBER_OR_TEXT, "examples": [24, 23.976]})]
Resolution = Annotated[
    str | None, WithJsonSchema({**_NUMBER_OR_TEXT, "examples": ["720p", "1080p", "4k", "1280x720"]})
]
AspectRatio = Annotated[
    str | None,
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": "^\\s*\\d{1,3}\\s*:\\s*\\d{1,3}\\s*$"},
                              {"type": "null"}], "examples": ["16:9", "9:16", "1:1"]}),
]


class ClipSettings(_Strict):
    """Generation settings shared by ``defaults``, ``profiles`` and each clip."""

    provider: Literal["local", "fal", "replicate", "comfyui"] | None = Field(
        None, description="Who generates the clip. `local` renders an offline animatic."
    )
    model: str | None = Field(None, description="Model family or endpoint id (see `aivpbuild models`).")
    mode: Literal["auto", "t2v", "i2v"] | None = Field(
        None, description="auto: I2V when a keyframe exists, else T2V. t2v/i2v pin the mode."
    )
    duration: Seconds = Field(None, description='Seconds: 5, "5" or "5s".')
    resolution: Resolution = Field(None, description='480p, 720p, 1080p, 4k … or "WxH" (even).')
    aspect_ratio: AspectRatio = Field(None, description='"16:9", "9:16", "1:1", …')
    fps: FrameRate = Field(None, description="Frames per second: 24, 25, 30, 23.976 …")
    audio: bool | None = Field(None, description="Generate an audio track.")
    seed: int | None = Field(None, description="Generation seed (part of the key).")
    camera: str | None = Field(None, description='Camera move in words: "slow push-in, pan left".')
    camera_fixed: bool | None = Field(None, description="Ask the model to keep the camera still.")
    negative_prompt: str | None = Field(None, description="What the model should avoid.")
    params: dict[str, Any] | None = Field(
        None, description="Extra provider input parameters, passed through (part of the key)."
    )

    _v_duration = field_validator("duration", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )
    _v_fps = field_validator("fps", mode="before")(lambda v: None if v is None else parse_fps(v))
    _v_aspect = field_validator("aspect_ratio", mode="before")(
        lambda v: None if v is None else parse_aspect_ratio(v)
    )
    _v_resolution = field_validator("resolution", mode="before")(
        lambda v: None if v is None else parse_resolution(v)
    )


ImageSource = str | FrameRef


class Clip(ClipSettings):
    """One clip: a build target whose output is ``video/clips/<id>.mp4``."""

    prompt: str = Field("", description="Prompt: a jinja2 template rendered against `context`.")
    alt_prompts: dict[str, str] | None = Field(None, description="Prompts for other model families.")
    image: ImageSource | None = Field(None, description="First keyframe: a path or {clip, frame}.")
    end_image: ImageSource | None = Field(None, description="Last keyframe: a path or {clip, frame}.")
    refs: list[str] = Field(default_factory=list, description="Reference images (characters).")
    scene: str | None = Field(None, description="Scene slug (metadata).")
    dialogue: str | list[str] | None = Field(None, description="Spoken lines (metadata; audio).")
    scene_shot: str | None = Field(None, description='Storyboard shot number, e.g. "1.3".')
    continuity: bool | None = Field(None, description="Review the cut from the previous clip.")
    notes: str | None = Field(None, description="Free text for people; not part of the key.")
    meta: dict[str, Any] | None = Field(None, description="Free-form metadata; not in the key.")

    @field_validator("image", "end_image", mode="before")
    @classmethod
    def _v_image(cls, value: Any) -> Any:
        return _check_path(value) if isinstance(value, str) else value

    @field_validator("refs", mode="before")
    @classmethod
    def _v_refs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        return [_check_path(v) if isinstance(v, str) else v for v in value or []]


class Edit(_Strict):
    """The assembled edit: every clip in manifest order, concatenated."""

    output: str = Field("video/final.mp4", description="Where the edit is written.")

    @field_validator("output")
    @classmethod
    def _v_output(cls, value: str) -> str:
        value = _check_path(value)
        if not value.startswith("video/") or not value.endswith(".mp4"):
            raise ValueError(f"{value!r} must be an .mp4 under video/ (aivpbuild writes only there)")
        return value


class Budget(_Strict):
    """Spending limits checked before any paid job is submitted."""

    max_usd: float | None = Field(None, ge=0, description="Refuse builds estimated above this (exit 3).")
    confirm_usd: float = Field(5.0, ge=0, description="On a terminal, ask before builds above this.")


class Manifest(_Strict):
    """The whole ``project.aivp.yaml``."""

    version: Literal[1] = Field(description="Manifest format version; always 1.")
    name: str = Field(description="Project name.")
    defaults: ClipSettings = Field(default_factory=ClipSettings, description="Applied to every clip.")
    profiles: dict[str, ClipSettings] = Field(
        default_factory=dict, description="Named overlays on `defaults`, chosen with --profile."
    )
    context: dict[str, Any] = Field(default_factory=dict, description="Prompt templating context.")
    models: dict[str, ModelOverride] = Field(
        default_factory=dict, description="Models to add to the catalogue, or catalogue entries to override."
    )
    clips: dict[str, Clip] = Field(description="The clips, in edit order.")
    edit: Edit | None = Field(None, description="Assemble the clips into one film.")
    budget: Budget = Field(default_factory=Budget, description="Spending limits.")
    providers: ProvidersSettings = Field(
        default_factory=ProvidersSettings, description="Provider base URLs, concurrency and polling."
    )
    review: ReviewSettings = Field(
        default_factory=ReviewSettings, description="Thresholds for `aivpbuild review` (per provider too)."
    )

    @field_validator("budget", mode="before")
    @classmethod
    def _v_budget(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"max_usd": value}  # `budget: 20` is short for `budget: {max_usd: 20}`
        return value

    @field_validator("clips")
    @classmethod
    def _v_clip_ids(cls, clips: dict[str, Clip]) -> dict[str, Clip]:
        for clip_id in clips:
            if not _ID_RE.match(str(clip_id)):
                raise ValueError(
                    f"clip id {clip_id!r} is not valid; use letters, digits, '-', '_' and '.' "
                    "(e.g. shot-01)"
                )
        if not clips:
            raise ValueError("there are no clips; add at least one under `clips:`")
        return clips


# ----------------------------------------------------------------------------- loading
def parse_manifest(text: str, source: Path) -> Manifest:
    """Parse and validate manifest text; errors carry ``file:line:col``."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(
            f"{where}: YAML syntax error: {problem}",
            hint="check indentation and quoting around that position",
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(
            f"{source}:1:1: the manifest must be a mapping with `version`, `name` and `clips`",
            hint="see examples/project.aivp.yaml",
        )
    _check_unique_keys(text, source)
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, text, source) from None


def _check_unique_keys(text: str, source: Path) -> None:
    """YAML silently keeps the last of two equal keys; for clip ids that loses a clip."""
    import yaml

    if text.count("\n") > 20000:  # large generated manifests: skip the second pass
        return
    node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if key.value in seen:
                    mark = key.start_mark
                    raise ManifestError(
                        f"{source}:{mark.line + 1}:{mark.column + 1}: duplicate key {key.value!r}",
                        hint="each key may appear once; rename or merge the two entries",
                    )
                seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _explain(exc: ValidationError, text: str, source: Path) -> ManifestError:
    """Turn the first pydantic error into a message with file:line:col and a fix."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    line, col, found = locate(text, loc)
    where = f"{source}:{line}:{col}" if line else str(source)
    dotted = ".".join(str(p) for p in found) or "(top level)"
    kind = err["type"]
    hint = None
    if kind == "extra_forbidden":
        bad = str(loc[-1])
        options = sorted(_fields_at(loc[:-1]))
        close = difflib.get_close_matches(bad, options, n=1)
        message = f"unknown key {bad!r}"
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(options)}"
    elif kind == "missing":
        message = f"required key {str(loc[-1])!r} is missing"
    elif kind in ("value_error", "assertion_error"):
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif kind == "literal_error":
        message = f"{err['input']!r} is not allowed: {err['msg'].lower()}"
    else:
        message = f"{err['msg']} (got {err.get('input')!r})"
    extra = len(exc.errors()) - 1
    if extra:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return ManifestError(f"{where}: {dotted}: {message}", hint=hint)


def locate(text: str, loc: tuple[Any, ...]) -> tuple[int | None, int | None, tuple[Any, ...]]:
    """Line and column (1-based) of the deepest node along ``loc`` that exists in the YAML."""
    import yaml

    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None, None, loc
    found: list[Any] = []
    mark = node.start_mark if node else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node, mark = value, key.start_mark
                    found.append(part)
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
            found.append(part)
        else:
            break
    if len(found) == len(loc) - 1 and node is not None and not isinstance(loc[-1], int):
        found.append(loc[-1])  # e.g. a missing or unknown key: point at its parent
    if mark is None:
        return None, None, tuple(found)
    return mark.line + 1, mark.column + 1, tuple(found)


def _fields_at(loc: tuple[Any, ...]) -> set[str]:
    """Field names allowed at ``loc`` (for did-you-mean hints)."""
    current: Any = Manifest
    for part in loc:
        current = _step(current, part)
        if current is None:
            return set()
    return set(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else set()


def _step(annotation: Any, part: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field else None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        return args[1]
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return _step(arg, part) if str(part) in arg.model_fields else arg
    return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to validate and complete manifests."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aivpbuild project manifest (project.aivp.yaml)"
    return schema


def schema_text() -> str:
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
