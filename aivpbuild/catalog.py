"""The model catalogue: endpoint per mode, accepted inputs, limits and prices.

:func:`resolve` turns one clip (after defaults, profile and templates) into the provider,
endpoint, mode, exact input JSON and estimated cost, and refuses at load time anything the
model cannot take (a 7 s Kling clip, 1080p Seedance I2V, a missing keyframe) naming the clip,
the field, what the model accepts and the nearest valid value: never a paid 422.

The mode rule: a keyframe makes a clip image-to-video, none text-to-video (with a notice);
``mode:`` pins it, and so does a full endpoint id given as ``model:``. An image-to-video clip
with an ``end_image`` uses the family's first+last-frame endpoint where it has one (Veo 3.1).

Built-in families live in ``data/catalog.yaml``; the manifest's ``models:`` adds models or
overrides catalogue entries (:class:`ModelOverride`). Payloads of user models:

- fal and Replicate: ``prompt``, ``duration`` (a string for fal unless ``duration_format``
  says otherwise, an integer for Replicate), ``resolution``, ``aspect_ratio``, ``seed`` and
  ``negative_prompt`` when the clip sets them, ``generate_audio`` when ``audio: optional``,
  then the clip's ``params``. Keyframes go to ``image_field``/``end_image_field`` (defaults:
  ``image_url`` and no last frame on fal, ``image``/``end_image`` on Replicate). A Replicate
  endpoint is ``owner/name``, ``owner/name:version`` or a bare version id.
- ComfyUI: ``workflow`` (the project-relative API-format JSON), ``prompt``, ``duration``,
  ``width``, ``height``, ``fps``, ``frames``, ``seed`` and ``negative_prompt`` when set, then
  ``params``; keyframes as ``image``/``end_image``. They fill the workflow's placeholders.

The ``local`` provider resolves to the free ``animatic`` renderer: any duration, any size.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aivpbuild.errors import ManifestError

Mode = Literal["t2v", "i2v"]
LOCAL_FAMILY = "animatic"
LOCAL_ENDPOINT = "local/animatic"
_LABEL = {"t2v": "T2V", "i2v": "I2V", "flf": "first+last-frame", "v2v": "V2V"}
_REPLICATE_REF = re.compile(r"[\w.-]+/[\w.-]+(:[0-9a-f]{64})?|[0-9a-f]{64}")
Price = float | dict[str, float]

#: The notice of an ``auto`` clip without a keyframe (the planner words a missing file itself).
NO_KEYFRAME = "no keyframe, using text-to-video"


class ModelOverride(BaseModel):
    """One entry of the manifest's ``models:``: a new model, or changes to a catalogue one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["fal", "replicate", "comfyui"] | None = Field(
        None, description="Who serves it (a new model defaults to fal).")
    endpoint: str | None = Field(None, description=(
        "One endpoint for every mode: a fal endpoint id, or Replicate owner/name, "
        "owner/name:version or a version id. A new fal or Replicate model defaults to its name."))
    endpoints: dict[Literal["t2v", "i2v", "flf"], str] | None = Field(
        None, description="Endpoint per mode (t2v, i2v, flf = first+last frame).")
    workflow: str | None = Field(
        None, description="ComfyUI: the API-format workflow JSON, relative to the project.")
    aliases: list[str] | None = Field(None, description="Short names usable as `model:`.")
    durations: list[int] | None = Field(
        None, description="Allowed durations in seconds (any if unset).")
    duration_format: Literal["string", "string_s", "int", "none"] | None = Field(
        None, description='How duration is sent: "5" (string), "5s" (string_s), 5 (int) or '
                          "not at all (none).")
    resolutions: list[str] | None = Field(
        None, description="Allowed resolutions, e.g. [480p, 720p] (any if unset).")
    aspect_ratios: list[str] | None = Field(
        None, description='Allowed aspect ratios, e.g. ["16:9", "9:16"] (any if unset).')
    audio: Literal["none", "optional", "always"] | None = Field(
        None, description="Whether the model makes audio; optional sends generate_audio.")
    audio_default: bool | None = Field(
        None, description="Audio on or off when a clip does not say (audio: optional).")
    image_field: str | None = Field(None, description="Input field for the first keyframe URL.")
    end_image_field: str | None = Field(
        None, description="Input field for the last keyframe URL (none: the model takes none).")
    params: dict[str, Literal["string", "number", "integer", "boolean", "array", "object"]] | None \
        = Field(None, description="Extra inputs clips may pass in `params:`, with their JSON "
                                  "type (unchecked if unset).")
    price_per_second: Price | None = Field(
        None, description="USD per second of output without audio, or {resolution: USD}.")
    price_per_second_audio: Price | None = Field(
        None, description="USD per second with audio on, or {resolution: USD} "
                          "(defaults to price_per_second).")

    @model_validator(mode="after")
    def _consistent(self) -> ModelOverride:
        if self.endpoint and self.endpoints:
            raise ValueError("give either endpoint (all modes) or endpoints (per mode), not both")
        if self.workflow and self.provider not in (None, "comfyui"):
            raise ValueError("workflow is for provider: comfyui")
        if self.provider == "replicate":
            for ref in [self.endpoint or "", *(self.endpoints or {}).values()]:
                if ref and not _REPLICATE_REF.fullmatch(ref):
                    raise ValueError(f"{ref!r} is not a Replicate model: use owner/name, "
                                     "owner/name:version or a 64-character version id")
        if any(d <= 0 for d in self.durations or ()):
            raise ValueError("durations must be positive seconds")
        for price in (self.price_per_second, self.price_per_second_audio):
            values = price.values() if isinstance(price, dict) else [price]
            if any(v is not None and v < 0 for v in values):
                raise ValueError("prices must be 0 or more USD per second")
        return self


class ParamError(ManifestError):
    """A clip asks for something its model cannot do (refused before any spending)."""

    def __init__(self, clip: str, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.clip = clip
        self.field = field

    def __str__(self) -> str:
        where = f"clips.{self.clip}.{self.field}: " if self.clip else ""
        return where + super().__str__()


@dataclass(frozen=True)
class ClipParams:
    """One clip after defaults, profile and templates are applied."""

    clip_id: str
    provider: str
    model: str
    mode: Literal["auto", "t2v", "i2v"]
    prompt: str
    duration: float
    resolution: str
    aspect_ratio: str
    width: int
    height: int
    fps: Fraction
    audio: bool | None
    seed: int | None
    camera_fixed: bool | None = None
    negative_prompt: str | None = None
    has_image: bool = False
    has_end_image: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """What a clip resolves to: who makes it, with which input JSON, for how much."""

    provider: str
    family: str
    endpoint: str
    mode: Mode
    payload: dict[str, Any]
    file_fields: dict[str, Literal["image", "end_image"]]
    audio: bool
    estimate_usd: float | None
    notices: tuple[str, ...] = ()
    #: Whether the model takes a seed (a new take of a clip then gets a new one).
    accepts_seed: bool = True


@dataclass(frozen=True)
class ModelFamily:
    """A model family as the catalogue (or a ``models:`` entry) describes it."""

    id: str
    data: Mapping[str, Any]

    def get(self, key: str, variant: str, default: Any = None) -> Any:
        """A value for one mode: ``<variant>_<key>`` where given, else ``<key>``."""
        for name in (f"{variant}_{key}", key):
            if name in self.data:
                return self.data[name]
        return default

    @property
    def provider(self) -> str:
        return str(self.data.get("provider") or "fal")

    @property
    def title(self) -> str:
        return str(self.data.get("title") or self.id)

    @property
    def endpoints(self) -> dict[str, str]:
        return dict(self.data.get("endpoints") or {})

    @property
    def modes(self) -> list[str]:
        """The modes a clip can resolve to (t2v, i2v)."""
        return [m for m in ("t2v", "i2v") if m in self.endpoints]


class Catalog:
    """Model families by id, with their aliases and endpoint ids as other names."""

    def __init__(self, families: Mapping[str, ModelFamily]) -> None:
        self._families = dict(families)
        self._names: dict[str, str] = {}
        self._pinned: dict[str, str] = {}  # endpoint id -> the one variant it serves
        for fam in self._families.values():
            for alias in fam.data.get("aliases") or ():
                owner = self._names.setdefault(alias, fam.id)
                if owner != fam.id or alias in self._families:
                    raise ManifestError(f"models.{fam.id}.aliases: {alias!r} already names "
                                        f"{owner if owner != fam.id else alias}",
                                        hint="choose another alias")
        for fam in self._families.values():
            served: dict[str, list[str]] = {}
            for variant, endpoint in fam.endpoints.items():
                served.setdefault(endpoint, []).append(variant)
            for endpoint, variants in served.items():
                if endpoint in self._families or endpoint in self._names:
                    continue
                self._names[endpoint] = fam.id
                if len(variants) == 1:
                    self._pinned[endpoint] = variants[0]

    def families(self) -> list[ModelFamily]:
        return list(self._families.values())

    def family(self, model: str, *, clip: str | None = None) -> ModelFamily:
        """The family a ``model:`` names (id, alias or endpoint id); ParamError if unknown."""
        name = model if model in self._families else self._names.get(model)
        if name is not None:
            return self._families[name]
        close = difflib.get_close_matches(model, [*self._families, *self._names], n=1, cutoff=0.5)
        raise ParamError(clip or "", "model", f"unknown model {model!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else ""),
                         hint="see `aivpbuild models`, or describe it under `models:`")

    def pinned(self, model: str) -> str | None:
        """The variant a full endpoint id stands for (``.../image-to-video`` -> i2v)."""
        return self._pinned.get(model)


# ----------------------------------------------------------------------------- loading
@cache
def _builtin_data() -> dict[str, Any]:
    import yaml

    text = resources.files("aivpbuild").joinpath("data/catalog.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return dict(yaml.load(text, Loader=loader)["families"])


@cache
def _builtin_catalog() -> Catalog:
    data = copy.deepcopy(_builtin_data())
    return Catalog({name: ModelFamily(name, entry) for name, entry in data.items()})


def load_catalog(overrides: Mapping[str, ModelOverride] | None = None) -> Catalog:
    """The built-in families with the manifest's ``models:`` merged over them (shared and
    cached when there are no overrides: treat it as read-only)."""
    if not overrides:
        return _builtin_catalog()
    data = copy.deepcopy(_builtin_data())  # never let an override leak into the built-ins
    for name, override in overrides.items():
        data[name] = _merge(name, data.get(name), override)
    return Catalog({name: ModelFamily(name, entry) for name, entry in data.items()})


_PER_MODE_KEYS = ("durations", "resolutions", "aspect_ratios", "image_field", "end_image_field",
                  "params", "duration_format")


def _merge(name: str, base: dict[str, Any] | None, override: ModelOverride) -> dict[str, Any]:
    """One family entry: the catalogue's (if any) with the override applied."""
    given = override.model_dump(exclude_none=True)
    provider = given.get("provider") or (base or {}).get("provider") or "fal"
    entry: dict[str, Any] = base if base is not None else _new_entry(name, provider)
    entry.update(provider=provider, user=True)
    if "endpoint" in given:
        entry["endpoints"] = {"t2v": given["endpoint"], "i2v": given["endpoint"]}
    elif "endpoints" in given:  # a catalogue model keeps the modes the user leaves out
        kept = entry.get("endpoints", {}) if base is not None else {}
        entry["endpoints"] = {**kept, **given["endpoints"]}
    for key in _PER_MODE_KEYS:
        if key in given:  # the user's value holds for every mode
            for variant in ("t2v", "i2v", "flf"):
                entry.pop(f"{variant}_{key}", None)
    for key in ("workflow", "aliases", "audio", "audio_default", *_PER_MODE_KEYS):
        if key in given:
            entry[key] = given[key]
    price = entry.setdefault("price", {})
    for key, state in (("price_per_second", "silent"), ("price_per_second_audio", "audio")):
        if key in given:
            per_second = key.removeprefix("price_")
            for variant in ("t2v_", "i2v_", "flf_", ""):
                price.pop(variant + per_second, None)
            price[per_second] = given[key]
            price.get("tokens", {}).pop(state, None)
    if provider == "comfyui":
        if not entry.get("workflow"):
            raise ManifestError(f"models.{name}: a ComfyUI model needs `workflow:`",
                                hint="set workflow to the API-format workflow JSON in the project")
        entry.update(image_field="image", end_image_field="end_image",  # the adapter's names
                     fields=["seed", "negative_prompt"])
    return entry


def _new_entry(name: str, provider: str) -> dict[str, Any]:
    """Defaults for a model the catalogue lacks."""
    endpoint = f"comfyui/{name}" if provider == "comfyui" else name
    entry: dict[str, Any] = {"endpoints": {"t2v": endpoint, "i2v": endpoint}, "audio": "none",
                             "fields": ["seed", "negative_prompt"]}
    if provider == "fal":
        entry.update(duration_format="string", image_field="image_url")
    elif provider == "replicate":
        entry.update(duration_format="int", image_field="image", end_image_field="end_image")
    return entry


# ----------------------------------------------------------------------------- resolution
def resolve(catalog: Catalog, clip: ClipParams) -> Resolution:
    """Provider, endpoint, mode, payload and cost for one clip; ParamError if impossible."""
    if clip.provider == "local":
        return _resolve_local(clip)
    if not clip.model:
        raise ParamError(clip.clip_id, "model", f"provider {clip.provider!r} needs a model",
                         hint="set `model:` on the clip or in defaults; see `aivpbuild models`")
    fam = catalog.family(clip.model, clip=clip.clip_id)
    if fam.provider != clip.provider:
        raise ParamError(clip.clip_id, "provider",
                         f"{fam.id} is served by {fam.provider!r}, not {clip.provider!r}",
                         hint=f"set provider: {fam.provider}, or models.{fam.id}.provider")
    notices: list[str] = []
    mode, variant = _mode(clip, fam, catalog.pinned(clip.model))
    _check_duration(clip, fam, variant)
    resolution = _check_resolution(clip, fam, variant)
    _check_aspect(clip, fam, variant)
    audio = _audio(clip, fam, notices)
    _check_params(clip, fam, variant)
    payload = _payload(clip, fam, variant, resolution, audio)
    files = _file_fields(clip, fam, variant, notices)
    cost = estimate_usd(fam, mode=mode, resolution=resolution, width=clip.width,
                        height=clip.height, fps=clip.fps, duration=clip.duration, audio=audio,
                        end_image=variant == "flf")
    if mode == "t2v" and clip.mode == "auto" and not clip.has_image:
        notices.insert(0, f"{clip.clip_id}: {NO_KEYFRAME}")
    accepts_seed = fam.provider == "comfyui" or "seed" in set(fam.get("fields", variant) or ())
    return Resolution(fam.provider, fam.id, fam.endpoints[variant], mode, payload, files, audio,
                      cost, tuple(notices), accepts_seed)


def _resolve_local(clip: ClipParams) -> Resolution:
    """The offline animatic renderer: free, any duration and size; the mode rule applies."""
    _check_positive(clip)
    mode: Mode = clip.mode if clip.mode != "auto" else "i2v" if clip.has_image else "t2v"
    if mode == "i2v" and not clip.has_image:
        raise ParamError(clip.clip_id, "image", "mode: i2v needs a first keyframe, and the clip "
                         "has none", hint="set `image:` to a keyframe file, or remove `mode:`")
    return Resolution("local", LOCAL_FAMILY, LOCAL_ENDPOINT, mode, {}, {}, bool(clip.audio), 0.0)


def _mode(clip: ClipParams, fam: ModelFamily, pinned: str | None) -> tuple[Mode, str]:
    """The clip's mode and the endpoint variant serving it (t2v, i2v or flf)."""
    model, cid = clip.model, clip.clip_id
    if pinned == "v2v":
        raise ParamError(cid, "model", f"{model} is {fam.id}'s video-to-video endpoint; "
                         "aivpbuild builds text- and image-to-video clips",
                         hint=f"use model: {fam.id}")
    pinned_mode = "i2v" if pinned == "flf" else pinned
    if pinned_mode and clip.mode not in ("auto", pinned_mode):
        raise ParamError(cid, "mode", f"{model} is the {_LABEL[pinned_mode]} endpoint, but the "
                         f"clip has mode: {clip.mode}",
                         hint=f"use model: {fam.id} and let the mode pick the endpoint")
    mode = pinned_mode or (clip.mode if clip.mode != "auto" else "i2v" if clip.has_image else "t2v")
    if mode not in fam.modes:
        has = " and ".join(_LABEL[m] for m in fam.modes) or "no buildable mode"
        if mode == "t2v" and clip.mode == "auto":
            raise ParamError(cid, "image", f"{fam.id} is image-to-video only (it has {has}), and "
                             "the clip has no keyframe", hint="set `image:` to a keyframe file")
        raise ParamError(cid, "mode" if clip.mode != "auto" else "image",
                         f"{fam.id} has no {_LABEL[mode]} mode (it has {has})",
                         hint="set mode: t2v to leave the keyframe out, or pick a model with I2V"
                         if mode == "i2v" else "pick a model with T2V")
    if mode == "i2v" and not clip.has_image:
        raise ParamError(cid, "image", f"{model if pinned else 'mode: i2v'} needs a first "
                         "keyframe, and the clip has none", hint="set `image:` to a keyframe file")
    if pinned == "flf" and not clip.has_end_image:
        raise ParamError(cid, "end_image", f"{model} needs a last keyframe, and the clip has none",
                         hint="set `end_image:`, or use model: " + fam.id)
    use_flf = pinned == "flf" or (clip.has_end_image and pinned is None)
    variant = "flf" if mode == "i2v" and "flf" in fam.endpoints and use_flf else mode
    return cast(Mode, mode), variant


def _or_list(values: Sequence[Any]) -> str:
    shown = [str(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _check_positive(clip: ClipParams) -> None:
    if clip.duration <= 0:
        raise ParamError(clip.clip_id, "duration",
                         f"duration must be above 0 seconds, not {clip.duration:g}")


def _check_duration(clip: ClipParams, fam: ModelFamily, variant: str) -> None:
    _check_positive(clip)
    allowed = fam.get("durations", variant)
    if allowed and clip.duration not in allowed:
        nearest = min(allowed, key=lambda a: (abs(a - clip.duration), a))
        run = len(allowed) > 3 and list(allowed) == list(range(allowed[0], allowed[-1] + 1))
        shown = f"{allowed[0]} to {allowed[-1]} whole" if run else _or_list(allowed)
        raise ParamError(clip.clip_id, "duration", f"{fam.id} accepts {shown} seconds, not "
                         f"{clip.duration:g} (nearest: {nearest})", hint=f"set duration: {nearest}")


def _short_side(resolution: str) -> int:
    from aivpbuild.manifest import output_size

    return min(output_size(resolution, "1:1"))


def _canonical(clip: ClipParams, allowed: Sequence[str] | None) -> str:
    """The clip's resolution as the model names it: 2160p is 4k; a WxH equal to a named size
    at the clip's aspect ratio is that name."""
    from aivpbuild.manifest import output_size

    if not allowed or clip.resolution in allowed:
        return clip.resolution
    if clip.resolution == "2160p" and "4k" in allowed:
        return "4k"
    if "x" in clip.resolution:
        for name in allowed:
            if output_size(name, clip.aspect_ratio) == (clip.width, clip.height):
                return str(name)
    return clip.resolution


def _check_resolution(clip: ClipParams, fam: ModelFamily, variant: str) -> str:
    allowed = fam.get("resolutions", variant)
    resolution = _canonical(clip, allowed)
    if allowed and resolution not in allowed:
        short = _short_side(resolution)
        nearest = min(allowed, key=lambda r: (abs(_short_side(r) - short), _short_side(r)))
        scoped = f"{variant}_resolutions" in fam.data
        raise ParamError(clip.clip_id, "resolution",
                         f"{fam.id}{' ' + _LABEL[variant] if scoped else ''} accepts "
                         f"{_or_list(allowed)}, not {clip.resolution} (nearest: {nearest})",
                         hint=f"set resolution: {nearest}")
    return resolution


def _check_aspect(clip: ClipParams, fam: ModelFamily, variant: str) -> None:
    allowed = fam.get("aspect_ratios", variant)
    if allowed and clip.aspect_ratio not in allowed:
        def ratio(text: str) -> float:
            w, h = text.split(":")
            return math.log(int(w) / int(h))

        nearest = min(allowed, key=lambda a: abs(ratio(a) - ratio(clip.aspect_ratio)))
        raise ParamError(clip.clip_id, "aspect_ratio", f"{fam.id} accepts {_or_list(allowed)}, "
                         f"not {clip.aspect_ratio} (nearest: {nearest})",
                         hint=f'set aspect_ratio: "{nearest}"')


def _audio(clip: ClipParams, fam: ModelFamily, notices: list[str]) -> bool:
    """Effective audio: the clip's wish, the model's default, or what the model can do."""
    support = fam.data.get("audio", "none")
    if support == "none":
        if clip.audio:
            notices.append(f"{clip.clip_id}: {fam.id} makes no audio; the clip will be silent")
        return False
    if support == "always":
        if clip.audio is False:
            notices.append(f"{clip.clip_id}: {fam.id} always makes audio (and bills for it)")
        return True
    return bool(fam.data.get("audio_default", False)) if clip.audio is None else clip.audio


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "number": (int, float), "integer": (int,), "string": (str,),
    "array": (list, tuple), "object": (dict, Mapping),
}


def _check_params(clip: ClipParams, fam: ModelFamily, variant: str) -> None:
    """Extra ``params:`` must be inputs the model takes, with the right type or value."""
    accepted: Mapping[str, Any] | None = fam.get("params", variant)
    if accepted is None and fam.data.get("user"):
        return  # a user model that does not list its params: passed through unchecked
    accepted = accepted or {}
    for name, value in clip.params.items():
        if name not in accepted:
            close = difflib.get_close_matches(name, list(accepted), n=1)
            raise ParamError(clip.clip_id, "params", f"{fam.id} {_LABEL[variant]} takes no input "
                             f"{name!r} (extra inputs it accepts: {', '.join(accepted) or 'none'})",
                             hint=f"did you mean {close[0]!r}?" if close else
                             "use the clip's own fields (duration, seed, …) instead of params")
        spec = accepted[name]
        if isinstance(spec, list):
            same_kind = isinstance(value, bool) == any(isinstance(s, bool) for s in spec)
            if value not in spec or not same_kind:
                raise ParamError(clip.clip_id, "params", f"params.{name} for {fam.id} is one of "
                                 f"{_or_list([repr(s) for s in spec])}, not {value!r}",
                                 hint=f"e.g. {name}: {spec[0]!r}")
            continue
        ok = isinstance(value, _JSON_TYPES[spec]) and not (
            isinstance(value, bool) and spec in ("number", "integer"))
        if not ok:
            example = {"boolean": "true", "number": "0.5", "integer": "1", "array": "[...]",
                       "object": "{...}"}.get(spec, '"text"')
            raise ParamError(clip.clip_id, "params", f"params.{name} must be a {spec} for "
                             f"{fam.id}, not {type(value).__name__} {value!r}",
                             hint=f"e.g. {name}: {example}")


def _seconds(duration: float) -> int | float:
    return int(duration) if float(duration).is_integer() else duration


def _payload(clip: ClipParams, fam: ModelFamily, variant: str, resolution: str,
             audio: bool) -> dict[str, Any]:
    """The provider input JSON without file fields, typed as the API wants it."""
    seconds = _seconds(clip.duration)
    payload: dict[str, Any] = {"prompt": clip.prompt}
    if fam.provider == "comfyui":
        payload.update(workflow=fam.data["workflow"], duration=seconds, width=clip.width,
                       height=clip.height, fps=float(clip.fps),
                       frames=round(Fraction(clip.duration).limit_denominator(1000) * clip.fps))
    else:
        fmt = fam.get("duration_format", variant, "string")
        if fmt != "none":
            texts = {"string": str(seconds), "string_s": f"{seconds}s"}
            payload["duration"] = texts.get(fmt, seconds)
        res_fmt = fam.get("resolution_format", variant, "lower")
        if res_fmt != "none":
            payload["resolution"] = resolution.upper() if res_fmt == "upper" else resolution
        if fam.get("send_aspect_ratio", variant, True):
            payload["aspect_ratio"] = clip.aspect_ratio
        if fam.data.get("audio") == "optional":
            payload["generate_audio"] = audio
    fields = set(fam.get("fields", variant) or ())
    if "seed" in fields and clip.seed is not None:
        payload["seed"] = clip.seed
    if "camera_fixed" in fields and clip.camera_fixed is not None:
        payload["camera_fixed"] = clip.camera_fixed
    if "negative_prompt" in fields and clip.negative_prompt:
        payload["negative_prompt"] = clip.negative_prompt
    payload.update(clip.params)
    return payload


def _file_fields(clip: ClipParams, fam: ModelFamily, variant: str,
                 notices: list[str]) -> dict[str, Literal["image", "end_image"]]:
    if variant == "t2v":
        return {}
    files: dict[str, Literal["image", "end_image"]] = {
        fam.get("image_field", variant, "image_url"): "image"}
    if clip.has_end_image:
        end = fam.get("end_image_field", variant)
        if end:
            files[end] = "end_image"
        else:
            notices.append(f"{clip.clip_id}: {fam.id} takes no last frame; end_image is not used")
    return files


# ----------------------------------------------------------------------------- pricing
def _rate(table: Price | None, resolution: str) -> float | None:
    if table is None or isinstance(table, int | float):
        return None if table is None else float(table)
    value = table.get(resolution)
    return None if value is None else float(value)


def estimate_usd(family: ModelFamily, *, mode: str, resolution: str, width: int, height: int,
                 fps: Fraction, duration: float, audio: bool,
                 end_image: bool = False) -> float | None:
    """Estimated USD of one generation; None when the catalogue has no price for it.

    ``end_image`` prices the first+last-frame endpoint where the family has one."""
    variant = "flf" if end_image and mode == "i2v" and "flf" in family.endpoints else mode
    price: Mapping[str, Any] = family.data.get("price") or {}
    tokens = price.get(f"{variant}_tokens", price.get("tokens")) or {}
    state = "audio" if audio else "silent"
    if state in tokens:
        count = width * height * float(price.get("token_fps", fps)) * duration / 1024
        return round(count * tokens[state] / 1e6, 4)

    def table(key: str) -> Any:
        return price.get(f"{variant}_{key}", price.get(key))

    audio_table = table("per_second_audio") if audio else None
    per_second = _rate(audio_table if audio_table is not None else table("per_second"), resolution)
    return None if per_second is None else round(per_second * duration, 4)


# ----------------------------------------------------------------------------- `models`
def models_table(catalog: Catalog) -> list[dict[str, Any]]:
    """One JSON-serialisable row per family for ``aivpbuild models``: price per 5 s at the
    family's default resolution (16:9), with audio off and on."""
    from aivpbuild.manifest import output_size

    rows = []
    for fam in catalog.families():
        d = fam.data
        resolutions = d.get("resolutions")
        res = d.get("default_resolution") or ("720p" if not resolutions or "720p" in resolutions
                                               else resolutions[0])
        w, h = output_size(res, "16:9")
        mode = "t2v" if "t2v" in fam.modes else "i2v"

        def five(audio: bool, fam: ModelFamily = fam, res: str = res, w: int = w, h: int = h,
                 mode: str = mode) -> float | None:
            return estimate_usd(fam, mode=mode, resolution=res, width=w, height=h,
                                fps=Fraction(24), duration=5, audio=audio)

        support = d.get("audio", "none")
        rows.append({
            "family": fam.id, "title": fam.title, "provider": fam.provider,
            "aliases": list(d.get("aliases") or ()), "endpoints": fam.endpoints,
            "modes": [m for m in ("t2v", "i2v", "flf", "v2v") if m in fam.endpoints],
            "durations": d.get("durations"), "resolutions": resolutions,
            "resolutions_by_mode": {m: d[f"{m}_resolutions"] for m in ("t2v", "i2v")
                                    if d.get(f"{m}_resolutions")},
            "audio": {"none": "no", "always": "always"}.get(support, "optional"),
            "audio_default": None if support != "optional" else bool(d.get("audio_default")),
            "price_resolution": res,
            "price_per_5s": five(False) if support != "always" else None,
            "price_per_5s_audio": five(True) if support != "none" else None,
        })
    return rows


def format_models_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of :func:`models_table` as a plain aligned text table."""
    def money(v: float | None) -> str:
        return "-" if v is None else f"${v:.2f}"

    def durations(values: Sequence[int] | None) -> str:
        if not values:
            return "any"
        if len(values) > 3 and list(values) == list(range(values[0], values[-1] + 1)):
            return f"{values[0]}-{values[-1]}"
        return ",".join(map(str, values))

    def resolutions(row: Mapping[str, Any]) -> str:
        text = ",".join(row["resolutions"] or ["any"])
        limits = [f"{m.upper()} {','.join(r)}" for m, r in row["resolutions_by_mode"].items()]
        return text + (f" ({'; '.join(limits)})" if limits else "")

    def audio(row: Mapping[str, Any]) -> str:
        if row["audio"] != "optional":
            return str(row["audio"])
        return "on/off (on)" if row["audio_default"] else "on/off (off)"

    head = ("family", "provider", "modes", "seconds", "resolutions", "audio", "res",
            "5 s", "5 s+audio")
    body = [(r["family"], r["provider"], "/".join(m.upper() for m in r["modes"]),
             durations(r["durations"]), resolutions(r), audio(r), r["price_resolution"],
             money(r["price_per_5s"]), money(r["price_per_5s_audio"])) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [head, *body]]
    return "\n".join(lines) + "\n(price of 5 s at the resolution in `res`, 16:9)"
