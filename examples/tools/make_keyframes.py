"""Paint the example project's keyframes (procedural, deterministic) with Pillow and numpy.

Run from the repository root: ``python examples/tools/make_keyframes.py``. The PNGs are
committed; this script documents how they were made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "image"
W, H = 1280, 720


def sky(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0, 1, H)[:, None, None]
    rows = (1 - t) * np.array(top) + t * np.array(bottom)
    return Image.fromarray(np.repeat(rows, W, axis=1).astype(np.uint8), "RGB")


def city(img: Image.Image, rng: np.random.Generator, horizon: int, lit: float) -> None:
    draw = ImageDraw.Draw(img)
    x = -20
    while x < W:
        w = int(rng.integers(60, 160))
        h = int(rng.integers(120, horizon - 40))
        shade = int(rng.integers(12, 30))
        draw.rectangle([x, horizon - h, x + w, horizon], fill=(shade, shade, shade + 12))
        for wy in range(horizon - h + 12, horizon - 10, 18):
            for wx in range(x + 8, x + w - 8, 14):
                if rng.random() < lit:
                    colour = [(255, 60, 170), (60, 220, 255), (255, 200, 90)][int(rng.integers(0, 3))]
                    draw.rectangle([wx, wy, wx + 6, wy + 9], fill=colour)
        x += w + int(rng.integers(0, 12))


def street(img: Image.Image, horizon: int, glow: tuple[int, int, int]) -> None:
    draw = ImageDraw.Draw(img)
    for i, y in enumerate(range(horizon, H)):
        k = i / (H - horizon)
        draw.line([(0, y), (W, y)], fill=tuple(int(c * (0.15 + 0.35 * k)) for c in glow))


def rain(img: Image.Image, rng: np.random.Generator, count: int = 900) -> Image.Image:
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(count):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        draw.line([(x, y), (x - 4, y + 18)], fill=(200, 220, 255, 70), width=1)
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def figure(img: Image.Image, x: int, base: int, scale: float, coat: tuple[int, int, int]) -> None:
    draw = ImageDraw.Draw(img)
    s = scale
    draw.ellipse([x - 14 * s, base - 170 * s, x + 14 * s, base - 140 * s], fill=(30, 24, 28))
    draw.polygon([(x - 26 * s, base - 140 * s), (x + 26 * s, base - 140 * s),
                  (x + 34 * s, base - 40 * s), (x - 34 * s, base - 40 * s)], fill=coat)
    draw.rectangle([x - 20 * s, base - 40 * s, x - 6 * s, base], fill=(25, 25, 30))
    draw.rectangle([x + 6 * s, base - 40 * s, x + 20 * s, base], fill=(25, 25, 30))
    draw.rectangle([x + 22 * s, base - 105 * s, x + 58 * s, base - 75 * s], fill=(170, 120, 60))


def door(img: Image.Image, x: int, open_amount: float) -> None:
    draw = ImageDraw.Draw(img)
    draw.rectangle([x, 260, x + 180, 620], fill=(40, 30, 34))
    draw.rectangle([x + 10, 270, x + 170, 610], fill=(90, 60, 50))
    if open_amount:
        draw.rectangle([x + 10, 270, x + 10 + int(160 * open_amount), 610], fill=(255, 210, 140))
    draw.rectangle([x + 60, 220, x + 120, 245], fill=(255, 60, 170))


def save(img: Image.Image, rel: str) -> None:
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    img.filter(ImageFilter.SMOOTH).save(path, optimize=True)


def main() -> None:
    rng = np.random.default_rng(7)
    # shot-02: the courier rides through the market street
    img = sky((10, 8, 30), (60, 20, 70)); city(img, rng, 470, 0.35); street(img, 470, (255, 60, 170))
    figure(img, 520, 640, 1.6, (235, 200, 40)); save(rain(img, rng), "frames/shot-02-ff.png")
    # shot-03: arriving at the door, first and last frame
    base = sky((14, 10, 24), (40, 16, 48)); street(base, 620, (60, 220, 255))
    first = base.copy(); door(first, 760, 0.0); figure(first, 420, 660, 2.2, (235, 200, 40))
    save(rain(first, np.random.default_rng(3)), "frames/shot-03-ff.png")
    last = base.copy(); door(last, 760, 0.55); figure(last, 700, 660, 2.2, (235, 200, 40))
    save(rain(last, np.random.default_rng(3)), "frames/shot-03-lf.png")
    # shot-05: rooftop, the hero shot
    img = sky((20, 30, 70), (120, 60, 110)); city(img, rng, 560, 0.5)
    figure(img, 640, 700, 2.6, (235, 200, 40)); save(rain(img, rng, 500), "frames/shot-05-ff.png")
    # shot-06: dawn over the quiet city
    img = sky((120, 150, 200), (250, 190, 150)); city(img, rng, 600, 0.05)
    street(img, 600, (250, 190, 150)); save(img, "frames/shot-06-ff.png")
    # character portrait used as a reference image
    portrait = sky((30, 30, 40), (70, 60, 80)).crop((0, 0, 512, 512))
    figure(portrait, 256, 500, 2.8, (235, 200, 40)); save(portrait, "characters/mara-front.png")


if __name__ == "__main__":
    main()
