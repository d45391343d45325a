"""The text-to-video slate: a patterned background the camera moves over, and a readable card
(clip id, wrapped prompt, camera, duration) with a running timecode and a progress bar (drawn
as RGBA layers that the renderer blends onto its yuv420p frames).

Pillow's built-in font is used (``ImageFont.load_default(size=...)``): no font files needed.
"""

from __future__ import annotations

import math
import textwrap
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aivpbuild.media.camera import CameraPath


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def background(width: int, height: int, path: CameraPath, oversample: float,
               seed: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A dark gradient with a grid and ring markers, large enough for the whole camera path.

    Returns the image and the (left, top, width, height) of the region the first frame shows.
    """
    ml, mt, mr, mb, zmax = path.extent()
    kw, kh = round(width * oversample * zmax), round(height * oversample * zmax)
    left, top = math.ceil(ml * kw) + 2, math.ceil(mt * kh) + 2
    w, h = left + kw + math.ceil(mr * kw) + 2, top + kh + math.ceil(mb * kh) + 2
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    hue = (seed % 97) / 97
    ones = np.ones((h, w))
    base = np.stack([(30 + 20 * hue) * ones + 40 * x, 28 * ones + 30 * y,
                     48 * ones + 50 * (1 - y) * hue], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    step = max(8, kh // 9)
    line = max(1, kh // 400)
    for gx in range(left % step, w, step):
        draw.line([(gx, 0), (gx, h)], fill=(70, 70, 95), width=line)
    for gy in range(top % step, h, step):
        draw.line([(0, gy), (w, gy)], fill=(70, 70, 95), width=line)
    r = step // 3
    ring = max(1, kh // 300)
    for gx in range(left % (step * 3) + step // 2, w, step * 3):
        for gy in range(top % (step * 3) + step // 2, h, step * 3):
            draw.ellipse([gx - r, gy - r, gx + r, gy + r], outline=(120, 110, 160), width=ring)
    return img, (float(left), float(top), float(kw), float(kh))


def card(clip_id: str, prompt: str, camera: str | None, duration: float, fps: Fraction,
         width: int, height: int) -> Image.Image:
    """The static part of the slate (RGBA, output size): id, prompt, camera and duration on a
    translucent panel, and a fixed centre mark to judge the background's move against."""
    w, h = width, height
    panel = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(panel)
    big, small = max(8, h // 14), max(6, h // 26)
    margin = w // 16
    draw.rectangle([margin // 2, h // 10, w - margin // 2, h - h // 10], fill=(0, 0, 0, 150))
    draw.text((margin, h // 10 + small), clip_id, font=font(big), fill=(255, 220, 90, 255))
    chars = max(10, int((w - 2 * margin) / (small * 0.55)))
    lines = textwrap.wrap(prompt or "(no prompt)", chars)[: max(1, (h // 2) // (small + 4))]
    y = h // 10 + small + big + small
    for line in lines:
        draw.text((margin, y), line, font=font(small), fill=(235, 235, 240, 255))
        y += small + max(2, small // 3)
    facts = f"camera: {camera or 'static'}   duration: {duration:g} s   {float(fps):.6g} fps"
    draw.text((margin, h - h // 10 - 2 * small - 4), facts, font=font(small),
              fill=(160, 200, 255, 255))
    arm = max(3, h // 40)
    for a, b in (((w // 2 - arm, h // 2), (w // 2 + arm, h // 2)),
                 ((w // 2, h // 2 - arm), (w // 2, h // 2 + arm))):
        draw.line([a, b], fill=(255, 255, 255, 140), width=max(1, h // 360))
    return panel


def timecode(index: int, fps: Fraction) -> str:
    """Non-drop-frame timecode MM:SS:FF of frame ``index`` at the nominal (rounded) rate."""
    nominal = max(1, round(fps))
    seconds, frame = divmod(index, nominal)
    return f"{seconds // 60:02d}:{seconds % 60:02d}:{frame:02d}"


def ticker(index: int, total: int, fps: Fraction, width: int,
           height: int) -> tuple[Image.Image, int]:
    """The changing part of the slate: the running timecode and a progress bar, as an RGBA
    strip of the frame's width, and the (even) row where the strip goes."""
    size = max(6, height // 20)
    top = (height - height // 10 - size - 4) // 2 * 2
    strip = Image.new("RGBA", (width, height - top), (0, 0, 0, 0))
    draw = ImageDraw.Draw(strip)
    draw.text((width - width // 4, height - height // 10 - size - 4 - top), timecode(index, fps),
              font=font(size), fill=(255, 255, 255, 255))
    bar = max(2, height // 90)
    done = round(width * (index + 1) / max(1, total))
    draw.rectangle([0, strip.height - bar, done - 1, strip.height - 1], fill=(255, 220, 90, 255))
    return strip, top
