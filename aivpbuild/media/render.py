"""The offline animatic renderer behind the ``local`` provider.

Image-to-video: the keyframe, cover-fitted onto an oversampled canvas, is filmed by a virtual
camera that follows the clip's ``camera`` words (see :mod:`camera`); every frame samples the
canvas through a float crop box, so motion is sub-pixel smooth. With an end keyframe the
move plays while the first keyframe dissolves into the last. Text-to-video: a slate (prompt,
clip id, camera, duration, running timecode) over a patterned background moved by the same
camera path, so the timing of the move can be judged.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aivpbuild.errors import MediaError
from aivpbuild.media import RENDERER_VERSION  # noqa: F401 - re-exported for callers
from aivpbuild.media.camera import CameraPlan, parse_camera
from aivpbuild.media.encode import VideoWriter

OVERSAMPLE = 1.25


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
    if spec.image is not None:
        canvases = [_canvas(spec.image, spec, plan)]
        if spec.end_image is not None:
            canvases.append(_canvas(spec.end_image, spec, plan))
    else:
        canvases = [_slate_background(spec, plan)]
    overlay = None if spec.image is not None else _slate_text(spec)
    speech = _speech(spec.dialogue, notes) if spec.audio and spec.dialogue else None
    total = spec.frames
    with VideoWriter(out, spec.width, spec.height, spec.fps, audio=spec.audio,
                     audio_samples=speech) as writer:
        for i in range(total):
            t = i / (total - 1) if total > 1 else 0.0
            frame = _film(canvases[0], plan, t, spec)
            if len(canvases) > 1:
                frame = Image.blend(frame, _film(canvases[1], plan, t, spec), _dissolve(t))
            if overlay is not None:
                frame = _with_timecode(frame, overlay, i, spec)
            writer.write(np.asarray(frame))
    return RenderReport(frames=total, notes=tuple(notes))


def _dissolve(t: float) -> float:
    """Cross-fade weight: holds the first keyframe, dissolves through the middle."""
    from aivpbuild.media.camera import ease

    return ease(min(max((t - 0.2) / 0.6, 0.0), 1.0))


def _canvas(path: Path, spec: RenderSpec, plan: CameraPlan) -> Image.Image:
    """The keyframe cover-fitted to the output aspect, big enough that even the most zoomed-in
    view is OVERSAMPLE × the output: every frame is then an area-averaging downscale (never a
    1:1 copy or an upscale), so sharpness stays constant and motion stays sub-pixel smooth."""
    try:
        with Image.open(path) as img:
            source = img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot read keyframe {path.name}: {exc}") from None
    factor = OVERSAMPLE * plan.max_zoom()
    w, h = round(spec.width * factor), round(spec.height * factor)
    scale = max(w / source.width, h / source.height)
    fitted = source.resize((max(w, round(source.width * scale)), max(h, round(source.height * scale))),
                           Image.Resampling.LANCZOS)
    left, top = (fitted.width - w) // 2, (fitted.height - h) // 2
    return fitted.crop((left, top, left + w, top + h))


def _film(canvas: Image.Image, plan: CameraPlan, t: float, spec: RenderSpec) -> Image.Image:
    """One frame: the canvas seen through the camera at time t (float crop box)."""
    cx, cy, zoom = plan.at(t, spec.seed)
    view_w, view_h = canvas.width / zoom, canvas.height / zoom
    x0 = canvas.width * (0.5 + cx) - view_w / 2
    y0 = canvas.height * (0.5 + cy) - view_h / 2
    x0 = min(max(x0, 0.0), canvas.width - view_w)
    y0 = min(max(y0, 0.0), canvas.height - view_h)
    return canvas.resize((spec.width, spec.height), Image.Resampling.BOX,
                         box=(x0, y0, x0 + view_w, y0 + view_h))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _slate_background(spec: RenderSpec, plan: CameraPlan) -> Image.Image:
    """A dark gradient with a grid and markers: motion over it is easy to read."""
    factor = OVERSAMPLE * plan.max_zoom()
    w, h = round(spec.width * factor), round(spec.height * factor)
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    hue = (spec.seed % 97) / 97
    base = np.stack([30 + 40 * x + 20 * hue + 0 * y, 28 + 30 * y + 0 * x, 48 + 50 * (1 - y) * hue + 0 * x], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    step = max(8, h // 9)
    for gx in range(0, w, step):
        draw.line([(gx, 0), (gx, h)], fill=(70, 70, 95), width=max(1, h // 400))
    for gy in range(0, h, step):
        draw.line([(0, gy), (w, gy)], fill=(70, 70, 95), width=max(1, h // 400))
    r = step // 3
    for gx in range(step // 2, w, step * 3):
        for gy in range(step // 2, h, step * 3):
            draw.ellipse([gx - r, gy - r, gx + r, gy + r], outline=(120, 110, 160), width=max(1, h // 300))
    return img


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
