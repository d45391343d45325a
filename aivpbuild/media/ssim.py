"""Image similarity in plain numpy: SSIM on luma, colour-histogram overlap, and cover-fit.

Used by the clip review to compare a clip's first frame with its input keyframe, and the last
frame of one clip with the first of the next. No scipy: the Gaussian window of SSIM is applied
as two separable passes over strided views.
"""

from __future__ import annotations

import numpy as np

#: BT.709 luma weights (the colour matrix aivpbuild encodes with).
LUMA_709 = np.array([0.2126, 0.7152, 0.0722])
_K1, _K2 = 0.01, 0.03
_SIGMA = 1.5
_WINDOW = 11


def luma(image: np.ndarray) -> np.ndarray:
    """A 2-D float64 luma plane from a grey (H x W) or RGB/RGBA (H x W x 3|4) array."""
    array = np.asarray(image)
    if array.ndim == 2:
        return array.astype(np.float64)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return array[..., :3].astype(np.float64) @ LUMA_709
    raise ValueError(f"expected a grey (H x W) or RGB (H x W x 3) image, got shape {array.shape}")


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _filter_valid(stack: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the last two axes of ``stack`` by ``kernel``."""
    from numpy.lib.stride_tricks import sliding_window_view

    rows = sliding_window_view(stack, kernel.size, axis=-1) @ kernel
    return sliding_window_view(rows, kernel.size, axis=-2) @ kernel


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float | None = None) -> float:
    """Mean structural similarity of two same-size images, on luma (RGB is converted).

    Gaussian window (11 taps, sigma 1.5; smaller for images under 11 pixels), the usual
    constants K1 = 0.01 and K2 = 0.03. ``data_range`` defaults to 255 for integer images and
    1.0 for float images. Identical images give 1.0; unrelated ones are near 0.
    """
    x, y = luma(a), luma(b)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of the same size, got {x.shape} and {y.shape}")
    if data_range is None:
        data_range = 255.0 if np.issubdtype(np.asarray(a).dtype, np.integer) else 1.0
    size = min(_WINDOW, *x.shape)
    size -= 1 - size % 2  # odd
    if size < 1:
        raise ValueError("ssim needs a non-empty image")
    kernel = _gaussian(size, _SIGMA * size / _WINDOW)
    mu_x, mu_y, xx, yy, xy = _filter_valid(np.stack([x, y, x * x, y * y, x * y]), kernel)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return float(score.mean())


def _unit(image: np.ndarray) -> np.ndarray:
    """Pixel values as floats in [0, 1] (uint8 is divided by 255; floats are taken as given)."""
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    return array.astype(np.float64) / 255.0


def _soft_histogram(image: np.ndarray, bins: int) -> np.ndarray:
    """Normalised histogram (joint over channels) where each value is shared linearly between
    its two nearest bin centres per channel, so a small colour shift moves little weight."""
    array = _unit(image)
    values = array.reshape(-1, 1) if array.ndim == 2 else array.reshape(-1, array.shape[-1])
    position = np.clip(values, 0.0, 1.0) * bins - 0.5
    low = np.floor(position)
    upper_weight = position - low
    low_index = low.astype(np.int64)
    channels = values.shape[1]
    counts = np.zeros(bins**channels)
    for corner in range(2**channels):
        index = np.zeros(len(values), dtype=np.int64)
        weight = np.ones(len(values))
        for c in range(channels):
            up = (corner >> c) & 1
            index = index * bins + np.clip(low_index[:, c] + up, 0, bins - 1)
            weight = weight * (upper_weight[:, c] if up else 1 - upper_weight[:, c])
        counts += np.bincount(index, weights=weight, minlength=counts.size)
    return counts / max(counts.sum(), 1e-12)


def histogram_overlap(a: np.ndarray, b: np.ndarray, *, bins: int = 8) -> float:
    """Colour-histogram intersection of two images, 0 (no shared colours) to 1 (same colours).

    RGB images use a joint histogram with ``bins`` levels per channel; grey images (or a grey
    and an RGB one, converted to luma) use ``bins * 8`` grey levels. Values are split between
    neighbouring bins, so a slight grade or re-encode does not look like a new scene. Sizes may
    differ. Images are uint8, or floats in [0, 1].
    """
    x, y = _unit(a), _unit(b)
    if x.ndim != y.ndim:
        x, y = luma(x), luma(y)
    if x.ndim == 3:
        x, y = x[..., :3], y[..., :3]
    elif x.ndim != 2:
        raise ValueError(f"expected grey or RGB images, got shapes {x.shape} and {y.shape}")
    levels = bins if x.ndim == 3 else bins * 8
    overlap = np.minimum(_soft_histogram(x, levels), _soft_histogram(y, levels)).sum()
    return float(min(1.0, overlap))


def cover_fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` (RGB uint8) to cover ``width`` x ``height`` and crop the centre, as an
    image-to-video model (and the local renderer) frames a keyframe of another shape."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image))
    scale = max(width / pil.width, height / pil.height)
    crop_w, crop_h = width / scale, height / scale
    left, top = (pil.width - crop_w) / 2, (pil.height - crop_h) / 2
    fitted = pil.resize((width, height), Image.Resampling.LANCZOS,
                        box=(left, top, left + crop_w, top + crop_h), reducing_gap=3.0)
    return np.asarray(fitted)
