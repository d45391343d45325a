"""Measuring motion in decoded frames: sub-pixel phase correlation and a numpy SSIM."""

from __future__ import annotations

import numpy as np


def gray(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) such that content at x in ``a`` is at x + dx in ``b`` (sub-pixel)."""
    fa, fb = np.fft.fft2(_window(gray(a))), np.fft.fft2(_window(gray(b)))
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-12)).real
    h, w = corr.shape
    py, px = np.unravel_index(np.argmax(corr), corr.shape)

    def refine(c_m: float, c_0: float, c_p: float) -> float:
        denom = c_m - 2 * c_0 + c_p
        return 0.0 if denom == 0 else 0.5 * (c_m - c_p) / denom

    dx = px + refine(corr[py, (px - 1) % w], corr[py, px], corr[py, (px + 1) % w])
    dy = py + refine(corr[(py - 1) % h, px], corr[py, px], corr[(py + 1) % h, px])
    dx = dx - w if dx > w / 2 else dx
    dy = dy - h if dy > h / 2 else dy
    return float(dx), float(dy)


def _window(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    return (img - img.mean()) * np.outer(np.hanning(h), np.hanning(w))


def zoom(a: np.ndarray, b: np.ndarray) -> float:
    """Scale factor s such that ``b`` looks like ``a`` magnified by s about the centre."""
    from PIL import Image

    h, w = a.shape[:2]
    best, best_s = -1.0, 1.0
    ga = Image.fromarray(a)
    for s in np.arange(0.70, 1.45, 0.005):
        if s >= 1:  # b is a magnified: crop a's centre and enlarge it
            cw, ch = w / s, h / s
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            cand = np.asarray(ga.resize((w, h), Image.Resampling.BILINEAR, box=box))
            score = _ncc(cand, b)
        else:  # b is a shrunk: crop b's centre and enlarge it to compare with a
            cw, ch = w * s, h * s
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            cand = np.asarray(Image.fromarray(b).resize((w, h), Image.Resampling.BILINEAR, box=box))
            score = _ncc(cand, a)
        if score > best:
            best, best_s = score, float(s)
    return best_s


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    gx, gy = gray(x), gray(y)
    gx, gy = gx - gx.mean(), gy - gy.mean()
    return float((gx * gy).sum() / (np.sqrt((gx * gx).sum() * (gy * gy).sum()) + 1e-12))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean SSIM on luma with a box window (numpy only)."""
    x, y = gray(a), gray(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def box(img: np.ndarray) -> np.ndarray:
        s = np.cumsum(np.cumsum(np.pad(img, ((1, 0), (1, 0))), 0), 1)
        k = window
        return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)

    mx, my = box(x), box(y)
    vx, vy, cov = box(x * x) - mx * mx, box(y * y) - my * my, box(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cov + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float((num / den).mean())


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture: ideal for precise phase correlation."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    noise = (rng.random((height // 4, width // 4, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(noise).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(1.2)))
