"""The offline animatic renderer behind the ``local`` provider.

Image-to-video: the keyframe, cover-fitted onto an oversampled canvas, is filmed by a virtual
camera that follows the clip's ``camera`` words (see :mod:`camera`); every frame samples the
canvas through a float crop box, so motion is sub-pixel smooth. With an end keyframe the
move plays while the first keyframe dissolves into the last. Text-to-video: a slate (prompt,
clip id, camera, duration, running timecode) over a patterned background moved by the same
camera path, so the timing of the move can be judged.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from aivpbuild.errors import MediaError
from aivpbuild.media import RENDERER_VERSION  # noqa: F401 - re-exported for callers
from aivpbuild.media.camera import CameraPlan, parse_camera
from aivpbuild.media.encode import VideoWriter, rgb_to_yuv709

OVERSAMPLE = 1.5


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
        return round(Fraction(self.duration).limit_denominator(1000) * self.fps)


@dataclass(frozen=True)
class RenderReport:
    frames: int
    notes: tuple[str, ...]


def render_clip(spec: RenderSpec, out: Path) -> RenderReport:
    """Render ``spec`` into a finished MP4 at ``out``."""
    plan = parse_camera(spec.camera)
    notes = list(plan.notes)
    speech = _speech(spec.dialogue, notes) if spec.audio and spec.dialogue else None
    total = spec.frames
    with VideoWriter(out, spec.width, spec.height, spec.fps, audio=spec.audio,
                     audio_samples=speech) as writer:
        if spec.image is not None:
            # Image-to-video works on Y, Cb and Cr planes: one colour conversion per keyframe,
            # and a luma plus two quarter-size chroma resamples per frame.
            first = _planes(_canvas(spec.image, spec, plan))
            last = _planes(_canvas(spec.end_image, spec, plan)) if spec.end_image else None
            for i in range(total):
                t = i / (total - 1) if total > 1 else 0.0
                frame = _film_planes(first, plan, t, spec)
                if last is not None:
                    weight = _dissolve(t)
                    if weight > 0:
                        mixed = (1 - weight) * frame + weight * _film_planes(last, plan, t, spec)
                        frame = np.rint(mixed).astype(np.uint8)
                writer.write_yuv(frame)
        else:
            background, overlay = _slate_background(spec, plan), _slate_text(spec)
            for i in range(total):
                t = i / (total - 1) if total > 1 else 0.0
                writer.write(np.asarray(_with_timecode(_film(background, plan, t, spec), overlay, i, spec)))
    return RenderReport(frames=total, notes=tuple(notes))


def _dissolve(t: float) -> float:
    """Cross-fade weight: holds the first keyframe, dissolves through the middle."""
    from aivpbuild.media.camera import ease

    return ease(min(max((t - 0.2) / 0.6, 0.0), 1.0))


@dataclass(frozen=True)
class Canvas:
    """The keyframe at working resolution inside a soft extension the camera may travel into."""

    image: Image.Image
    left: float     # pixel position of the keyframe region inside the image
    top: float
    width: float    # pixel size of the keyframe region
    height: float


def _canvas(path: Path, spec: RenderSpec, plan: CameraPlan) -> Canvas:
    """The keyframe cover-fitted to the output aspect at a size where even the most zoomed-in
    view is OVERSAMPLE x the output, so every frame is an area-averaging downscale (never 1:1
    or an upscale: constant sharpness, sub-pixel smooth motion)."""
    try:
        with Image.open(path) as img:
            source = img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot read keyframe {path.name}: {exc}") from None
    *_, zmax = plan.extent(spec.seed)
    w, h = round(spec.width * OVERSAMPLE * zmax), round(spec.height * OVERSAMPLE * zmax)
    scale = max(w / source.width, h / source.height)
    fitted = source.resize((max(w, round(source.width * scale)), max(h, round(source.height * scale))),
                           Image.Resampling.LANCZOS)
    left, top = (fitted.width - w) // 2, (fitted.height - h) // 2
    return _extend(fitted.crop((left, top, left + w, top + h)), spec, plan)


def _extend(key: Image.Image, spec: RenderSpec, plan: CameraPlan) -> Canvas:
    """Surround the keyframe with a blurred, dimmed mirror of itself wherever the camera goes
    beyond it (pull-outs, pans): the animatic's stand-in for content a model would invent."""
    ml, mt, mr, mb, _ = plan.extent(spec.seed)
    pad = [math.ceil(f * size) + 2 if f > 0 else 0
           for f, size in ((ml, key.width), (mt, key.height), (mr, key.width), (mb, key.height))]
    if not any(pad):
        return Canvas(key, 0.0, 0.0, key.width, key.height)
    pad = [min(p, (key.width if i % 2 == 0 else key.height) - 1) for i, p in enumerate(pad)]
    array = np.asarray(key)
    padded = np.pad(array, ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    soft = Image.fromarray((padded * 0.8).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(max(2, key.width // 80)))
    soft.paste(key, (pad[0], pad[1]))
    return Canvas(soft, float(pad[0]), float(pad[1]), key.width, key.height)


def _view_box(canvas: Canvas, plan: CameraPlan, t: float, spec: RenderSpec) -> tuple[float, float, float, float]:
    """The float crop box the camera sees at time t, in canvas pixels."""
    width, height = canvas.image.size
    cx, cy, zoom = plan.at(t, spec.seed)
    view_w, view_h = canvas.width / zoom, canvas.height / zoom
    x0 = canvas.left + canvas.width * (0.5 + cx) - view_w / 2
    y0 = canvas.top + canvas.height * (0.5 + cy) - view_h / 2
    x0 = min(max(x0, 0.0), width - view_w)
    y0 = min(max(y0, 0.0), height - view_h)
    return x0, y0, x0 + view_w, y0 + view_h


def _film(canvas: Canvas, plan: CameraPlan, t: float, spec: RenderSpec) -> Image.Image:
    """One RGB frame: the canvas seen through the camera at time t (a float crop box)."""
    return canvas.image.resize((spec.width, spec.height), Image.Resampling.BILINEAR,
                               box=_view_box(canvas, plan, t, spec))


@dataclass(frozen=True)
class Planes:
    """A canvas as BT.709 Y (full size) and Cb, Cr (half size) greyscale images."""

    y: Image.Image
    u: Image.Image
    v: Image.Image
    canvas: Canvas


def _planes(canvas: Canvas) -> Planes:
    rgb = np.asarray(canvas.image)
    rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")  # even sizes
    y, u, v = rgb_to_yuv709(rgb)
    return Planes(Image.fromarray(y), Image.fromarray(u), Image.fromarray(v), canvas)


def _film_planes(planes: Planes, plan: CameraPlan, t: float, spec: RenderSpec) -> np.ndarray:
    """One yuv420p frame ((H*3/2) x W) of the planes seen through the camera at time t."""
    x0, y0, x1, y1 = _view_box(planes.canvas, plan, t, spec)
    size, half = (spec.width, spec.height), (spec.width // 2, spec.height // 2)
    luma = planes.y.resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
    chroma = (x0 / 2, y0 / 2, x1 / 2, y1 / 2)
    cb = planes.u.resize(half, Image.Resampling.BILINEAR, box=chroma)
    cr = planes.v.resize(half, Image.Resampling.BILINEAR, box=chroma)
    flat = np.concatenate([np.asarray(p).ravel() for p in (luma, cb, cr)])
    return flat.reshape(spec.height * 3 // 2, spec.width)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _slate_background(spec: RenderSpec, plan: CameraPlan) -> Canvas:
    """A dark gradient with a grid and markers, big enough for the whole camera path: motion
    over it is easy to read."""
    ml, mt, mr, mb, zmax = plan.extent(spec.seed)
    kw, kh = round(spec.width * OVERSAMPLE * zmax), round(spec.height * OVERSAMPLE * zmax)
    left, top = math.ceil(ml * kw) + 2, math.ceil(mt * kh) + 2
    w, h = left + kw + math.ceil(mr * kw) + 2, top + kh + math.ceil(mb * kh) + 2
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    hue = (spec.seed % 97) / 97
    base = np.stack([30 + 40 * x + 20 * hue + 0 * y, 28 + 30 * y + 0 * x,
                     48 + 50 * (1 - y) * hue + 0 * x], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    step = max(8, kh // 9)
    line = max(1, kh // 400)
    for gx in range(left % step, w, step):
        draw.line([(gx, 0), (gx, h)], fill=(70, 70, 95), width=line)
    for gy in range(top % step, h, step):
        draw.line([(0, gy), (w, gy)], fill=(70, 70, 95), width=line)
    r = step // 3
    for gx in range(left % (step * 3) + step // 2, w, step * 3):
        for gy in range(top % (step * 3) + step // 2, h, step * 3):
            draw.ellipse([gx - r, gy - r, gx + r, gy + r], outline=(120, 110, 160), width=max(1, kh // 300))
    return Canvas(img, float(left), float(top), float(kw), float(kh))


def _slate_text(spec: RenderSpec) -> Image.Image:
    """The static part of the slate: prompt, id, camera and duration on a translucent panel."""
    w, h = spec.width, spec.height
    panel = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(panel)
    big, small = max(8, h // 14), max(6, h // 26)
    margin = w // 16
    draw.rectangle([margin // 2, h // 10, w - margin // 2, h - h // 10], fill=(0, 0, 0, 150))
    draw.text((margin, h // 10 + small), spec.clip_id, font=_font(big), fill=(255, 220, 90, 255))
    chars = max(10, int((w - 2 * margin) / (small * 0.55)))
    lines = textwrap.wrap(spec.prompt or "(no prompt)", chars)[: max(1, (h // 2) // (small + 4))]
    y = h // 10 + small + big + small
    for line in lines:
        draw.text((margin, y), line, font=_font(small), fill=(235, 235, 240, 255))
        y += small + max(2, small // 3)
    facts = f"camera: {spec.camera or 'static'}   duration: {spec.duration:g} s   {float(spec.fps):g} fps"
    draw.text((margin, h - h // 10 - 2 * small - 4), facts, font=_font(small), fill=(160, 200, 255, 255))
    return panel


def _with_timecode(frame: Image.Image, overlay: Image.Image, index: int, spec: RenderSpec) -> Image.Image:
    out = frame.convert("RGBA")
    out.alpha_composite(overlay)
    seconds = index / spec.fps
    fps_int = round(float(spec.fps))
    stamp = f"{int(seconds // 60):02d}:{int(seconds % 60):02d}:{index % max(1, fps_int):02d}"
    size = max(6, spec.height // 20)
    ImageDraw.Draw(out).text((spec.width - spec.width // 4, spec.height - spec.height // 10 - size - 4),
                             stamp, font=_font(size), fill=(255, 255, 255, 255))
    return out.convert("RGB")


def _speech(dialogue: str, notes: list[str]) -> np.ndarray | None:
    """The dialogue spoken by an offline engine (espeak-ng) as stereo float samples at 48 kHz,
    or None (silence) when no engine is installed."""
    import re
    import shutil
    import subprocess

    engine = shutil.which("espeak-ng") or shutil.which("espeak")
    if engine is None:
        notes.append("no offline speech engine (espeak-ng) found: audio is silence")
        return None
    text = " ".join(re.findall(r'"([^"]+)"', dialogue)) or re.sub(r"\[[^\]]*\]:?", "", dialogue)
    try:
        wav = subprocess.run([engine, "--stdout", "-s", "150", text], check=True,
                             capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        notes.append("speech engine failed: audio is silence")
        return None
    return _wav_to_48k_stereo(wav)


def _wav_to_48k_stereo(wav: bytes) -> np.ndarray:
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as reader:
        rate, channels = reader.getframerate(), reader.getnchannels()
        data = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    mono = data.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768
    positions = np.arange(0, len(mono), rate / 48000)
    resampled = np.interp(positions, np.arange(len(mono)), mono).astype(np.float32)
    return np.stack([resampled, resampled])
