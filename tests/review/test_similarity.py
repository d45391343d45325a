"""ssim and histogram_overlap sanity, SSIM checked against a direct per-window computation."""

from __future__ import annotations

import numpy as np
import pytest

from aivpbuild.media.ssim import cover_fit, histogram_overlap, luma, ssim
from tests.review.clips import scene


def reference_ssim(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM the slow way: one Gaussian-weighted window at a time."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i:i + size, j:j + size], b[i:i + size, j:j + size]
            ma, mb = (window * pa).sum(), (window * pb).sum()
            va = (window * pa * pa).sum() - ma * ma
            vb = (window * pb * pb).sum() - mb * mb
            cov = (window * pa * pb).sum() - ma * mb
            scores.append(((2 * ma * mb + c1) * (2 * cov + c2))
                          / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return float(np.mean(scores))


def test_ssim_matches_the_window_by_window_definition() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (24, 30)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255)
    assert ssim(a, b, data_range=255) == pytest.approx(reference_ssim(a, b), abs=1e-9)


def test_ssim_identical_is_one_and_unrelated_is_low() -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert ssim(noise, noise) == pytest.approx(1.0, abs=1e-12)
    assert abs(ssim(noise, other)) < 0.05
    picture = scene(2, 96, 64)
    noisy = np.clip(picture + rng.normal(0, 12, picture.shape), 0, 255).astype(np.uint8)
    assert 0.3 < ssim(picture, noisy) < 0.95  # degraded, still related
    assert ssim(picture, 255 - picture) < 0


def test_ssim_needs_equal_sizes_and_handles_tiny_images() -> None:
    with pytest.raises(ValueError, match="same size"):
        ssim(np.zeros((10, 10)), np.zeros((10, 12)))
    tiny = np.arange(30, dtype=np.uint8).reshape(5, 6)
    assert ssim(tiny, tiny) == pytest.approx(1.0)


def test_luma_uses_bt709_weights() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    assert luma(rgb)[0] == pytest.approx([0.2126 * 255, 0.7152 * 255, 0.0722 * 255])
    with pytest.raises(ValueError):
        luma(np.zeros((2, 2, 2)))


def test_histogram_overlap_identical_disjoint_and_half() -> None:
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 250
    blue = np.zeros((20, 20, 3), np.uint8)
    blue[..., 2] = 250
    assert histogram_overlap(red, red) == pytest.approx(1.0)
    assert histogram_overlap(red, blue) == pytest.approx(0.0)
    half = np.concatenate([red[:10], blue[:10]])
    assert histogram_overlap(red, half) == pytest.approx(0.5)


def test_histogram_overlap_ignores_size_and_layout_but_not_colour() -> None:
    picture = scene(4, 120, 80)
    big = np.repeat(np.repeat(picture, 2, axis=0), 2, axis=1)
    assert histogram_overlap(picture, big) == pytest.approx(1.0)
    assert histogram_overlap(picture, picture[::-1, ::-1]) == pytest.approx(1.0)
    slightly = np.clip(picture.astype(int) + 4, 0, 255).astype(np.uint8)
    assert histogram_overlap(picture, slightly) > 0.85  # soft bins: a small shift costs little
    assert histogram_overlap(picture, scene(9, 120, 80)) < 0.4


def test_histogram_overlap_grey_and_float_inputs() -> None:
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    assert histogram_overlap(ramp, ramp) == pytest.approx(1.0)
    assert histogram_overlap(ramp, ramp.astype(np.float64) / 255) == pytest.approx(1.0)
    dark, light = np.full((8, 8), 10, np.uint8), np.full((8, 8), 240, np.uint8)
    assert histogram_overlap(dark, light) == pytest.approx(0.0)
    rgb = np.stack([ramp] * 3, axis=-1)
    assert histogram_overlap(rgb, ramp) == pytest.approx(1.0, abs=1e-6)  # grey vs RGB: luma


def test_cover_fit_scales_to_cover_and_crops_the_centre() -> None:
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 150:250] = 255  # a white band in the middle quarter
    fitted = cover_fit(wide, 50, 50)
    assert fitted.shape == (50, 50, 3)
    assert fitted[:, 2:48].min() > 240  # the centre 100x100 square is all white
    tall = cover_fit(scene(1, 90, 160), 160, 90)
    assert tall.shape == (90, 160, 3)
