"""BT.709 limited-range yuv420p pixel maths in numpy: RGB conversion and alpha overlays.

A frame is one uint8 array of (H*3/2) x W: the Y plane (H x W) followed by the Cb and Cr
planes (H/2 x W/2 each), the layout of ``av.VideoFrame.from_ndarray(..., "yuv420p")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def _float_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, Cb, Cr as float32 code values (16-235, 16-240), full resolution, unrounded."""
    f = rgb[..., :3].astype(np.float32) / 255.0
    luma = f @ _LUMA
    return (16 + 219 * luma, 128 + 224 * (f[..., 2] - luma) / 1.8556,
            128 + 224 * (f[..., 0] - luma) / 1.5748)


def _half(plane: np.ndarray) -> np.ndarray:
    """2x2 box average (even sizes)."""
    return (plane[0::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 0::2] + plane[1::2, 1::2]) * 0.25


def _code(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def rgb_to_yuv709(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 (H x W x 3, even sizes) → BT.709 limited-range Y (H x W) and 2x2-averaged
    Cb, Cr (H/2 x W/2), the conversion the encoder's colour tags promise."""
    y, u, v = _float_planes(rgb)
    return _code(y), _code(_half(u)), _code(_half(v))


def planes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of a yuv420p frame's Y, Cb and Cr planes (writable when ``frame`` is)."""
    rows, width = frame.shape
    height = rows * 2 // 3
    flat = frame.reshape(-1)
    quarter = height * width // 4
    chroma = (height // 2, width // 2)
    return (frame[:height], flat[height * width: height * width + quarter].reshape(chroma),
            flat[height * width + quarter:].reshape(chroma))


@dataclass(frozen=True)
class Overlay:
    """An RGBA picture prepared for blending onto yuv420p frames at row ``top`` (even):
    premultiplied Y, Cb, Cr and the alpha at luma and at chroma resolution."""

    top: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    alpha: np.ndarray
    alpha_c: np.ndarray


def overlay(rgba: np.ndarray, top: int = 0) -> Overlay:
    """Prepare an RGBA uint8 image (even height, the frame's width) to go at row ``top``."""
    if top % 2 or rgba.shape[0] % 2:
        raise ValueError("an overlay needs an even top row and an even height")
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    y, u, v = _float_planes(rgba)
    return Overlay(top, y * alpha, _half(u * alpha), _half(v * alpha), alpha, _half(alpha))


def blend(frame: np.ndarray, layer: Overlay) -> None:
    """Composite ``layer`` over a yuv420p frame, in place ("over", as in RGB: the colour
    matrix is linear, so blending Y, Cb and Cr is blending R, G and B)."""
    y, u, v = planes(frame)
    rows, top = layer.alpha.shape[0], layer.top
    region = y[top:top + rows]
    region[...] = _code(region * (1 - layer.alpha) + layer.y)
    for plane, pre in ((u, layer.u), (v, layer.v)):
        part = plane[top // 2: (top + rows) // 2]
        part[...] = _code(part * (1 - layer.alpha_c) + pre)
