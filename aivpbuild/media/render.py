"""The offline animatic renderer behind the ``local`` provider.

Image-to-video: the keyframe, cover-fitted onto an oversampled canvas, is filmed by a virtual
camera that follows the clip's ``camera`` words (see :mod:`camera`); every frame samples the
canvas through a float crop box, so motion is sub-pixel smooth. The first frame is the first
keyframe; with an end keyframe the last frame is the end keyframe, the same move carrying both
while one dissolves into the other. Text-to-video: a slate (see :mod:`slate`) over a patterned
background moved by the same camera path, so the timing of the move can be judged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from aivpbuild.errors import MediaError
from aivpbuild.media import RENDERER_VERSION
from aivpbuild.media import slate as slates
from aivpbuild.media.camera import CameraPath, ease, parse_camera
from aivpbuild.media.encode import VideoWriter
from aivpbuild.media.speech import dialogue_text, speak
from aivpbuild.media.yuv import blend, overlay, rgb_to_yuv709

__all__ = ["RENDERER_VERSION", "RenderReport", "RenderSpec", "frames", "render_clip"]

#: The most zoomed-in view is still this many canvas pixels per output pixel: every frame is
#: an area-averaging downscale (constant sharpness; never a 1:1 copy that pulses).
OVERSAMPLE = 1.5
#: Largest output side accepted (a guard against a typo costing gigabytes of canvas).
MAX_SIDE = 8192


@dataclass(frozen=True)
class RenderSpec:
    clip_id: str
    prompt: str
    camera: str | None
    duration: float
    fps: Fraction
    width: int
    height: int
    image: Path | None = None
    end_image: Path | None = None
    audio: bool = False
    dialogue: str | None = None
    seed: int = 0

    @property
    def frames(self) -> int:
        """round(duration x fps), as the build computes it."""
        return round(Fraction(self.duration).limit_denominator(1000) * Fraction(self.fps))


@dataclass(frozen=True)
class RenderReport:
    frames: int
    notes: tuple[str, ...]


def render_clip(spec: RenderSpec, out: Path) -> RenderReport:
    """Render ``spec`` into a finished MP4 at ``out`` (MediaError on an impossible spec or an
    unreadable keyframe; then nothing is left at ``out``)."""
    _check(spec)
    plan = parse_camera(spec.camera)
    notes = list(plan.notes)
    speech = None
    if spec.audio and dialogue_text(spec.dialogue):
        speech, note = speak(dialogue_text(spec.dialogue))
        notes += [note] if note else []
    try:
        with VideoWriter(out, spec.width, spec.height, Fraction(spec.fps), audio=spec.audio,
                         audio_samples=speech) as writer:
            for frame in frames(spec):
                writer.write(frame)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return RenderReport(frames=writer.frames, notes=tuple(notes))


def frames(spec: RenderSpec) -> Iterator[np.ndarray]:
    """The clip's frames, one at a time, as BT.709 yuv420p planes ((H*3/2) x W, see
    :mod:`yuv`), ready for :meth:`VideoWriter.write`."""
    _check(spec)
    plan = parse_camera(spec.camera)
    total = spec.frames
    duration = float(total / Fraction(spec.fps))
    start = plan.path(spec.seed, duration, anchor=0.0)
    # Frames are made on Y, Cb and Cr planes: one colour conversion per picture, and a luma
    # plus two quarter-size chroma resamples per frame.
    if spec.image is not None:
        first = _planes(_canvas(spec.image, spec, start))
        last = None
        if spec.end_image is not None:
            last = _planes(_canvas(spec.end_image, spec, plan.path(spec.seed, duration, 1.0)))
        for i in range(total):
            t = i / (total - 1) if total > 1 else 0.0
            frame = _film_planes(first, t, spec)
            weight = _dissolve(t) if last is not None else 0.0
            if last is not None and weight > 0:
                other = _film_planes(last, t, spec)
                frame = np.rint((1 - weight) * frame + weight * other).astype(np.uint8)
            yield frame
    else:
        background = _planes(_slate_canvas(spec, start))
        card = overlay(np.asarray(slates.card(spec.clip_id, spec.prompt, spec.camera,
                                              spec.duration, spec.fps, spec.width,
                                              spec.height)))
        for i in range(total):
            t = i / (total - 1) if total > 1 else 0.0
            frame = _film_planes(background, t, spec)
            blend(frame, card)
            strip, top = slates.ticker(i, total, spec.fps, spec.width, spec.height)
            blend(frame, overlay(np.asarray(strip), top))
            yield frame


def _check(spec: RenderSpec) -> None:
    where = f"clip {spec.clip_id}"
    if spec.width <= 0 or spec.height <= 0 or spec.width % 2 or spec.height % 2:
        raise MediaError(f"{where}: the size {spec.width}x{spec.height} must be positive and "
                         "even (H.264 yuv420p); pick an even width and height")
    if max(spec.width, spec.height) > MAX_SIDE:
        raise MediaError(f"{where}: {spec.width}x{spec.height} is larger than the local "
                         f"renderer's {MAX_SIDE} px limit")
    if not Fraction(spec.fps) > 0:
        raise MediaError(f"{where}: fps must be positive, got {spec.fps}")
    if spec.frames < 1:
        raise MediaError(f"{where}: duration {spec.duration} s at {float(spec.fps):g} fps is "
                         "less than one frame; give a longer duration")


def _dissolve(t: float) -> float:
    """Cross-fade weight: the first keyframe holds, dissolves through the middle, and the end
    keyframe holds to the last frame."""
    return ease(min(max((t - 0.2) / 0.6, 0.0), 1.0))


@dataclass(frozen=True)
class Canvas:
    """A picture the camera films: the keyframe (``left, top, width, height`` in pixels) at
    working resolution inside whatever margin the camera path travels into."""

    image: Image.Image
    left: float
    top: float
    width: float
    height: float
    path: CameraPath


def _canvas(image: Path, spec: RenderSpec, path: CameraPath) -> Canvas:
    """The keyframe cover-fitted to the output aspect (centre crop, no distortion) at a size
    where even the most zoomed-in view is OVERSAMPLE x the output."""
    try:
        with Image.open(image) as img:
            source = _rgb(ImageOps.exif_transpose(img))
    except (OSError, ValueError) as exc:
        raise MediaError(f"clip {spec.clip_id}: cannot read keyframe {image.name}: {exc}",
                         hint=f"check that {image} is a PNG or JPEG image") from None
    *_, zmax = path.extent()
    w = round(spec.width * OVERSAMPLE * zmax)
    h = round(spec.height * OVERSAMPLE * zmax)
    scale = max(w / source.width, h / source.height)
    size = (max(w, round(source.width * scale)), max(h, round(source.height * scale)))
    fitted = source.resize(size, Image.Resampling.LANCZOS)
    left, top = (fitted.width - w) // 2, (fitted.height - h) // 2
    return _extend(fitted.crop((left, top, left + w, top + h)), path)


def _rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto black (not its hidden colour values)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)),
                                     rgba).convert("RGB")
    return image.convert("RGB")


def _extend(key: Image.Image, path: CameraPath) -> Canvas:
    """Surround the keyframe with a blurred, dimmed mirror of itself wherever the camera goes
    beyond it (pull-outs, pans): the animatic's stand-in for content a model would invent."""
    ml, mt, mr, mb, _ = path.extent()
    sizes = (key.width, key.height, key.width, key.height)
    pad = [min(math.ceil(f * size) + 2, size - 1) if f > 0 else 0
           for f, size in zip((ml, mt, mr, mb), sizes, strict=True)]
    if not any(pad):
        return Canvas(key, 0.0, 0.0, key.width, key.height, path)
    array = np.asarray(key)
    padded = np.pad(array, ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    soft = Image.fromarray((padded * 0.8).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(max(2, key.width // 80)))
    soft.paste(key, (pad[0], pad[1]))
    return Canvas(soft, float(pad[0]), float(pad[1]), key.width, key.height, path)


def _slate_canvas(spec: RenderSpec, path: CameraPath) -> Canvas:
    image, (left, top, width, height) = slates.background(spec.width, spec.height, path,
                                                          OVERSAMPLE, spec.seed)
    return Canvas(image, left, top, width, height, path)


def _view_box(canvas: Canvas, t: float) -> tuple[float, float, float, float]:
    """The float crop box the camera sees at time t, in canvas pixels."""
    width, height = canvas.image.size
    cx, cy, zoom = canvas.path.at(t)
    view_w, view_h = canvas.width / zoom, canvas.height / zoom
    x0 = canvas.left + canvas.width * (0.5 + cx) - view_w / 2
    y0 = canvas.top + canvas.height * (0.5 + cy) - view_h / 2
    x0 = min(max(x0, 0.0), width - view_w)
    y0 = min(max(y0, 0.0), height - view_h)
    return x0, y0, x0 + view_w, y0 + view_h


@dataclass(frozen=True)
class Planes:
    """A canvas as BT.709 Y (full size) and Cb, Cr (half size) greyscale images."""

    y: Image.Image
    u: Image.Image
    v: Image.Image
    canvas: Canvas


def _planes(canvas: Canvas) -> Planes:
    rgb = np.asarray(canvas.image)
    rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
    y, u, v = rgb_to_yuv709(rgb)
    return Planes(Image.fromarray(y), Image.fromarray(u), Image.fromarray(v), canvas)


def _film_planes(planes: Planes, t: float, spec: RenderSpec) -> np.ndarray:
    """One yuv420p frame ((H*3/2) x W) of the planes seen through the camera at time t."""
    x0, y0, x1, y1 = _view_box(planes.canvas, t)
    size, half = (spec.width, spec.height), (spec.width // 2, spec.height // 2)
    luma = planes.y.resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
    chroma = (x0 / 2, y0 / 2, x1 / 2, y1 / 2)
    cb = planes.u.resize(half, Image.Resampling.BILINEAR, box=chroma)
    cr = planes.v.resize(half, Image.Resampling.BILINEAR, box=chroma)
    flat = np.concatenate([np.asarray(p).ravel() for p in (luma, cb, cr)])
    return flat.reshape(spec.height * 3 // 2, spec.width)
