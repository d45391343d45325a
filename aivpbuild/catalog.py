"""The model catalogue: endpoint per mode, accepted inputs, limits and prices.

:func:`resolve` turns one clip (after defaults, profile and templates) into the provider,
endpoint, mode, exact input JSON and estimated cost, and refuses at load time anything the
model cannot take (a 7 s Kling clip, 1080p Seedance I2V, a missing keyframe) with the field,
what the model accepts and the nearest valid value: never a paid 422.

Built-in families live in ``data/catalog.yaml``; the manifest's ``models:`` adds or overrides
entries. A user model for Replicate is ``endpoint: owner/name`` (or ``owner/name:version``),
for ComfyUI ``workflow: path/to/workflow_api.json``; their payload is ``prompt``, ``duration``,
``seed`` (when set), ``negative_prompt`` (when set), plus ``params:``; for Replicate also
``resolution`` and ``aspect_ratio``, for ComfyUI ``workflow``, ``width``, ``height``, ``fps`` and
``frames``, which fill the workflow's placeholders.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aivpbuild.errors import ManifestError

Mode = Literal["t2v", "i2v"]
LOCAL_FAMILY = "animatic"


class ModelOverride(BaseModel):
    """One entry of the manifest's ``models:``: a new model, or changes to a catalogue one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["fal", "replicate", "comfyui"] | None = Field(None, description="Who serves it.")
    endpoint: str | None = Field(
        None, description="One endpoint for every mode (fal id, Replicate owner/name[:version])."
    )
    endpoints: dict[Literal["t2v", "i2v", "flf"], str] | None = Field(None, description="Endpoint per mode.")
    workflow: str | None = Field(None, description="ComfyUI: API-format workflow JSON (project-relative).")
    durations: list[int] | None = Field(None, description="Allowed durations in seconds (any if unset).")
    resolutions: list[str] | None = Field(None, description="Allowed resolutions (any if unset).")
    audio: Literal["none", "optional", "always"] | None = Field(None, description="Audio support.")
    price_per_second: float | dict[str, float] | None = Field(
        None, description="USD per second of output, or per resolution."
    )
    price_per_second_audio: float | dict[str, float] | None = Field(
        None, description="USD per second with audio on (defaults to price_per_second)."
    )


class ParamError(ManifestError):
    """A clip asks for something its model cannot do (refused before any spending)."""

    def __init__(self, clip: str, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.clip = clip
        self.field = field


@dataclass(frozen=True)
class ClipParams:
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
    provider: str
    family: str
    endpoint: str
    mode: Mode
    payload: dict[str, Any]
    file_fields: dict[str, Literal["image", "end_image"]]
    audio: bool
    estimate_usd: float | None
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFamily:
    """A model family as the catalogue (or a `models:` entry) describes it."""

    id: str
    data: Mapping[str, Any]

    @property
    def provider(self) -> str:
        return str(self.data.get("provider") or "fal")

    @property
    def endpoints(self) -> dict[str, str]:
        return dict(self.data.get("endpoints") or {})

    @property
    def modes(self) -> list[str]:
        return [m for m in ("t2v", "i2v") if m in self.endpoints]

    def resolutions_for(self, mode: str) -> list[str] | None:
        return self.data.get(f"{mode}_resolutions") or self.data.get("resolutions")


class Catalog:
    def __init__(self, families: Mapping[str, ModelFamily]) -> None:
        self._families = dict(families)
        self._aliases: dict[str, str] = {}
        self._pinned: dict[str, str] = {}
        for fam in families.values():
            for alias in fam.data.get("aliases") or ():
                self._aliases[alias] = fam.id
            for mode, endpoint in fam.endpoints.items():
                self._aliases.setdefault(endpoint, fam.id)
                self._pinned[endpoint] = mode

    def families(self) -> list[ModelFamily]:
        return list(self._families.values())

    def family(self, model: str, *, clip: str | None = None) -> ModelFamily:
        name = model if model in self._families else self._aliases.get(model, model)
        if name in self._families:
            return self._families[name]
        choices = list(self._families) + list(self._aliases)
        close = difflib.get_close_matches(model, choices, n=1, cutoff=0.5)
        raise ParamError(
            clip or "", "model", f"unknown model {model!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "see `aivpbuild models`, or describe it under `models:` in the manifest",
        )

    def pinned_mode(self, model: str) -> str | None:
        """The mode a full endpoint id stands for (`…/image-to-video` → i2v); None for a family
        id, an alias, or a family whose id is also its text-to-video endpoint (Veo)."""
        if model in self._families or (model in self._aliases and self._aliases[model] == model):
            return None
        fam = self._aliases.get(model)
        if fam is not None and model in (fam, *self._families[fam].data.get("aliases", ())):
            return None
        return self._pinned.get(model)


@cache
def _builtin() -> dict[str, Any]:
    import yaml

    text = resources.files("aivpbuild").joinpath("data/catalog.yaml").read_text("utf-8")
    return dict(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["families"])


def load_catalog(overrides: Mapping[str, ModelOverride] | None = None) -> Catalog:
    """The built-in families with the manifest's `models:` merged over them."""
    data = copy.deepcopy(_builtin())  # never let an override leak into the cached built-ins
    for name, override in (overrides or {}).items():
        entry = data.setdefault(name, {"provider": "fal", "audio": "none"})
        given = override.model_dump(exclude_none=True)
        if "endpoint" in given:
            entry["endpoints"] = {"t2v": given["endpoint"], "i2v": given["endpoint"]}
        entry.update({k: v for k, v in given.items() if k != "endpoint"})
        entry["user"] = True
        if entry.get("provider") == "comfyui":  # one workflow serves both modes
            entry.setdefault("endpoints", {"t2v": f"comfyui/{name}", "i2v": f"comfyui/{name}"})
            entry.setdefault("image_field", "image")
            entry.setdefault("end_image_field", "end_image")
        price = entry.setdefault("price", {})
        for key in ("price_per_second", "price_per_second_audio"):
            if key in given:
                price[key.replace("price_", "")] = given[key]
    return Catalog({name: ModelFamily(name, entry) for name, entry in data.items()})


# ----------------------------------------------------------------------------- resolution
def resolve(catalog: Catalog, clip: ClipParams) -> Resolution:
    """Provider, endpoint, mode, payload and cost for one clip; ParamError if impossible."""
    if clip.provider == "local":
        mode = _mode(clip, ["t2v", "i2v"], None)
        return Resolution("local", LOCAL_FAMILY, "local/animatic", mode, {}, {},
                          bool(clip.audio), 0.0, _t2v_notice(clip, mode))
    if not clip.model:
        raise ParamError(clip.clip_id, "model", f"provider {clip.provider!r} needs a model",
                         hint="set `model:` on the clip or in defaults; see `aivpbuild models`")
    fam = catalog.family(clip.model, clip=clip.clip_id)
    if fam.provider != clip.provider:
        raise ParamError(clip.clip_id, "provider",
                         f"{fam.id} is served by {fam.provider!r}, not {clip.provider!r}",
                         hint=f"set provider: {fam.provider}")
    mode = _mode(clip, fam.modes, catalog.pinned_mode(clip.model))
    d = fam.data
    endpoint = fam.endpoints[mode]
    if mode == "i2v" and clip.has_end_image and "flf" in fam.endpoints:
        endpoint = fam.endpoints["flf"]
    audio = _audio(clip, d)
    _check_duration(clip, fam)
    _check_resolution(clip, fam, mode)
    _check_aspect(clip, fam)
    payload = _payload(clip, fam, mode, audio)
    files = _file_fields(clip, d, mode, endpoint == fam.endpoints.get("flf"))
    cost = estimate_usd(fam, mode=mode, resolution=clip.resolution, width=clip.width,
                        height=clip.height, fps=clip.fps, duration=clip.duration, audio=audio)
    return Resolution(fam.provider, fam.id, endpoint, mode, payload, files, audio, cost,
                      _t2v_notice(clip, mode))


def _mode(clip: ClipParams, modes: list[str], pinned: str | None) -> Mode:
    if clip.mode != "auto":
        mode = clip.mode
    elif pinned:
        mode = pinned  # type: ignore[assignment]
    else:
        mode = "i2v" if clip.has_image else "t2v"
    if mode not in modes:
        raise ParamError(clip.clip_id, "mode", f"{clip.model} has no {mode.upper()} mode "
                         f"(it has {', '.join(m.upper() for m in modes)})",
                         hint="add a keyframe (`image:`) for I2V" if mode == "t2v" else "remove `mode:`")
    if mode == "i2v" and not clip.has_image:
        raise ParamError(clip.clip_id, "image", f"{clip.model if pinned else 'mode i2v'} needs a first "
                         "keyframe, and the clip has none", hint="set `image:` to a keyframe file")
    return mode


def _t2v_notice(clip: ClipParams, mode: str) -> tuple[str, ...]:
    if mode == "t2v" and clip.mode == "auto" and not clip.has_image and clip.provider != "local":
        return (f"{clip.clip_id}: no keyframe, using text-to-video",)
    return ()


def _audio(clip: ClipParams, d: Mapping[str, Any]) -> bool:
    support = d.get("audio", "none")
    if support == "none":
        if clip.audio:
            raise ParamError(clip.clip_id, "audio", f"{clip.model} makes no audio",
                             hint="set audio: false for this clip, or pick a model with audio")
        return False
    if support == "always":
        return True
    return bool(d.get("audio_default", False)) if clip.audio is None else clip.audio


def _nearest(value: float, allowed: list[int]) -> int:
    return min(allowed, key=lambda a: (abs(a - value), a))


def _check_duration(clip: ClipParams, fam: ModelFamily) -> None:
    allowed = fam.data.get("durations")
    if allowed and clip.duration not in allowed:
        shown = ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}" if len(allowed) > 1 else str(allowed[0])
        raise ParamError(clip.clip_id, "duration",
                         f"{fam.id} accepts {shown} seconds, not {clip.duration:g}",
                         hint=f"nearest valid: duration: {_nearest(clip.duration, allowed)}")


def _check_resolution(clip: ClipParams, fam: ModelFamily, mode: str) -> None:
    allowed = fam.resolutions_for(mode)
    if allowed and clip.resolution not in allowed:
        order = ["360p", "480p", "512p", "540p", "576p", "720p", "768p", "1080p", "1440p", "4k"]
        rank = order.index(clip.resolution) if clip.resolution in order else 5
        nearest = min(allowed, key=lambda r: abs(order.index(r) - rank))
        what = f"{fam.id} {mode.upper()}" if fam.data.get(f"{mode}_resolutions") else fam.id
        raise ParamError(clip.clip_id, "resolution",
                         f"{what} accepts {', '.join(allowed)}, not {clip.resolution}",
                         hint=f"nearest valid: resolution: {nearest}")


def _check_aspect(clip: ClipParams, fam: ModelFamily) -> None:
    allowed = fam.data.get("aspect_ratios")
    if allowed and clip.aspect_ratio not in allowed:
        raise ParamError(clip.clip_id, "aspect_ratio",
                         f"{fam.id} accepts aspect ratios {', '.join(allowed)}, not {clip.aspect_ratio}",
                         hint=f'nearest valid: aspect_ratio: "{allowed[0]}"')


def _payload(clip: ClipParams, fam: ModelFamily, mode: str, audio: bool) -> dict[str, Any]:
    d = fam.data
    if fam.provider == "comfyui" or (d.get("user") and fam.provider == "replicate"):
        return _user_payload(clip, fam)
    payload: dict[str, Any] = {"prompt": clip.prompt}
    fmt = d.get("duration_format", "string")
    seconds = int(clip.duration) if float(clip.duration).is_integer() else clip.duration
    payload["duration"] = {"string": str(seconds), "string_s": f"{seconds}s"}.get(fmt, seconds)
    res_fmt = d.get("resolution_format", "lower")
    if res_fmt == "lower":
        payload["resolution"] = clip.resolution
    elif res_fmt == "upper":
        payload["resolution"] = clip.resolution.upper()
    if d.get("aspect_ratios") and (mode == "t2v" or d.get("i2v_sends_aspect_ratio", True)):
        payload["aspect_ratio"] = clip.aspect_ratio
    if d.get("audio") == "optional":
        payload["generate_audio"] = audio
    fields = set(d.get("fields") or ())
    if "seed" in fields and clip.seed is not None:
        payload["seed"] = clip.seed
    if "camera_fixed" in fields and clip.camera_fixed is not None:
        payload["camera_fixed"] = clip.camera_fixed
    if "negative_prompt" in fields and clip.negative_prompt:
        payload["negative_prompt"] = clip.negative_prompt
    _check_params(clip, fam)
    payload.update(clip.params)
    return payload


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "number": (int, float), "integer": (int,), "string": (str,),
}


def _check_params(clip: ClipParams, fam: ModelFamily) -> None:
    """Extra `params:` must be inputs the model takes, of the right JSON type."""
    accepted: dict[str, str] = dict(fam.data.get("params") or {})
    for name, value in clip.params.items():
        if name not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            close = difflib.get_close_matches(name, list(accepted), n=1)
            raise ParamError(clip.clip_id, "params", f"{fam.id} takes no input {name!r} "
                             f"(extra inputs it accepts: {known})",
                             hint=f"did you mean {close[0]!r}?" if close else
                             "set the clip's own fields (duration, seed, …) instead of params")
        kind = accepted[name]
        ok = isinstance(value, _JSON_TYPES.get(kind, (object,)))
        if isinstance(value, bool) and kind in ("number", "integer"):
            ok = False
        if not ok:
            raise ParamError(clip.clip_id, "params", f"params.{name} must be a {kind} for {fam.id}, "
                             f"not {type(value).__name__} {value!r}", hint=f"e.g. {name}: "
                             + {"boolean": "true", "number": "0.5", "integer": "1"}.get(kind, '"text"'))


def _user_payload(clip: ClipParams, fam: ModelFamily) -> dict[str, Any]:
    seconds = int(clip.duration) if float(clip.duration).is_integer() else clip.duration
    payload: dict[str, Any] = {"prompt": clip.prompt, "duration": seconds}
    if fam.provider == "replicate":
        payload.update(resolution=clip.resolution, aspect_ratio=clip.aspect_ratio)
    if clip.seed is not None:
        payload["seed"] = clip.seed
    if clip.negative_prompt:
        payload["negative_prompt"] = clip.negative_prompt
    if fam.provider == "comfyui":
        if not fam.data.get("workflow"):
            raise ParamError(clip.clip_id, "model", f"ComfyUI model {fam.id!r} has no `workflow:`",
                             hint=f"set models.{fam.id}.workflow to an API-format workflow JSON")
        payload.update(workflow=fam.data["workflow"], width=clip.width, height=clip.height,
                       fps=float(clip.fps), frames=round(Fraction(clip.duration) * clip.fps))
    payload.update(clip.params)
    return payload


def _file_fields(clip: ClipParams, d: Mapping[str, Any], mode: str, flf: bool) -> dict[str, Any]:
    if mode != "i2v":
        return {}
    if flf:
        names = d["flf_fields"]
        return {names["image"]: "image", names["end_image"]: "end_image"}
    files: dict[str, Any] = {d.get("image_field", "image"): "image"}
    if clip.has_end_image and d.get("end_image_field"):
        files[d["end_image_field"]] = "end_image"
    return files


# ----------------------------------------------------------------------------- pricing
def _price(table: Any, resolution: str) -> float | None:
    if table is None:
        return None
    if isinstance(table, int | float):
        return float(table)
    value = table.get(resolution)
    return float(value) if value is not None else None


def estimate_usd(fam: ModelFamily, *, mode: str, resolution: str, width: int, height: int,
                 fps: Fraction, duration: float, audio: bool) -> float | None:
    """Estimated price of one generation; None when the catalogue has no price for it."""
    price = fam.data.get("price") or {}
    if "tokens" in price:
        per_million = price["tokens"].get("audio" if audio else "silent", price["tokens"].get("silent"))
        tokens = width * height * float(price.get("fps", fps)) * duration / 1024
        return round(tokens * per_million / 1e6, 4)
    prefix = "i2v_" if mode == "i2v" and f"i2v_per_second{'_audio' if audio else ''}" in price else ""
    per_second = None
    if audio:
        per_second = _price(price.get(f"{prefix}per_second_audio"), resolution)
    if per_second is None:
        per_second = _price(price.get(f"{prefix}per_second"), resolution)
    return None if per_second is None else round(per_second * duration, 4)


def models_table(catalog: Catalog) -> list[dict[str, Any]]:
    """One row per family for `aivpbuild models`."""
    rows = []
    for fam in catalog.families():
        d = fam.data
        res = (fam.resolutions_for("t2v") or ["720p"])
        default_res = "720p" if "720p" in res else res[0]
        w, h = _size(default_res)

        def five(audio: bool, fam: ModelFamily = fam, res: str = default_res, w: int = w, h: int = h) -> float | None:
            return estimate_usd(fam, mode="t2v", resolution=res, width=w, height=h,
                                fps=Fraction(24), duration=5, audio=audio)

        rows.append({
            "family": fam.id, "provider": fam.provider,
            "modes": fam.modes + [m for m in ("flf", "v2v") if m in fam.endpoints],
            "durations": d.get("durations"), "resolutions": d.get("resolutions"),
            "audio": d.get("audio", "none"), "price_resolution": default_res,
            "price_per_5s": five(False) if d.get("audio") != "always" else None,
            "price_per_5s_audio": five(True) if d.get("audio", "none") != "none" else None,
        })
    return rows


def _size(resolution: str) -> tuple[int, int]:
    from aivpbuild.manifest import output_size

    return output_size(resolution, "16:9")


def format_models_table(rows: list[dict[str, Any]]) -> str:
    def money(v: float | None) -> str:
        return "-" if v is None else f"${v:.2f}"

    head = ("family", "provider", "modes", "durations (s)", "resolutions", "audio", "5 s", "5 s + audio")
    body = [(r["family"], r["provider"], "/".join(m.upper() for m in r["modes"]),
             ",".join(map(str, r["durations"] or ["any"])), ",".join(r["resolutions"] or ["any"]),
             r["audio"], money(r["price_per_5s"]), money(r["price_per_5s_audio"])) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [head, *body]]
    return "\n".join(lines) + "\n(prices at 720p, or the model's lowest resolution, 16:9)"
