"""Measuring motion in decoded frames: sub-pixel phase correlation and a numpy SSIM."""

from __future__ import annotations

import numpy as np


def gray(image: np.ndarray) -> np.ndarray:
    """BT.709 luma of an RGB image; a 2-D (luma) image as it is."""
    if image.ndim == 2:
        return image.astype(np.float64)
    return image[..., :3].astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) such that content at x in ``a`` is at x + dx in ``b`` (sub-pixel).

    Phase correlation finds the whole-pixel shift; the remainder comes from the slope of the
    cross-power spectrum's phase at low frequencies (weighted least squares), which, unlike a
    parabola through the correlation peak, has no bias towards whole pixels.
    """
    fa, fb = np.fft.fft2(_window(gray(a))), np.fft.fft2(_window(gray(b)))
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-12)).real
    h, w = corr.shape
    py, px = np.unravel_index(np.argmax(corr), corr.shape)
    dx0 = px - w if px > w / 2 else px
    dy0 = py - h if py > h / 2 else py
    u = np.fft.fftfreq(w)[None, :]
    v = np.fft.fftfreq(h)[:, None]
    rest = cross * np.exp(2j * np.pi * (u * dx0 + v * dy0))  # what is left: under half a pixel
    low = (np.abs(u) < 0.2) & (np.abs(v) < 0.2) & ((u != 0) | (v != 0))
    weight = np.abs(rest)[low]
    phase = -np.angle(rest)[low] / (2 * np.pi)  # = u * ddx + v * ddy
    uu, vv = np.broadcast_to(u, rest.shape)[low], np.broadcast_to(v, rest.shape)[low]
    normal = np.array([[np.sum(weight * uu * uu), np.sum(weight * uu * vv)],
                       [np.sum(weight * uu * vv), np.sum(weight * vv * vv)]])
    rhs = np.array([np.sum(weight * uu * phase), np.sum(weight * vv * phase)])
    ddx, ddy = np.linalg.solve(normal, rhs)
    return float(dx0 + ddx), float(dy0 + ddy)


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
