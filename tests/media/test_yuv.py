"""yuv420p pixel maths: the BT.709 conversion and overlays blended on planes."""

from __future__ import annotations

import numpy as np
import pytest

from aivpbuild.media.yuv import blend, overlay, planes, rgb_to_yuv709


def frame_of(rgb: np.ndarray) -> np.ndarray:
    y, u, v = rgb_to_yuv709(rgb)
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, rgb.shape[1])


@pytest.mark.parametrize(("rgb", "yuv"), [
    ((0, 0, 0), (16, 128, 128)), ((255, 255, 255), (235, 128, 128)),
    ((255, 0, 0), (63, 102, 240)), ((0, 255, 0), (173, 42, 26)), ((0, 0, 255), (32, 240, 118)),
])
def test_bt709_limited_range_code_values(rgb: tuple[int, int, int],
                                         yuv: tuple[int, int, int]) -> None:
    y, u, v = rgb_to_yuv709(np.full((2, 2, 3), rgb, np.uint8))
    assert (int(y[0, 0]), int(u[0, 0]), int(v[0, 0])) == yuv


def test_planes_are_views_in_the_av_layout() -> None:
    frame = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8)  # a 4 x 8 picture
    y, u, v = planes(frame)
    assert y.shape == (4, 8) and u.shape == v.shape == (2, 4)
    assert u[0, 0] == 32 and v[0, 0] == 40 and v[-1, -1] == 47
    u[0, 0] = 0
    assert frame[4, 0] == 0


def test_blending_on_planes_matches_blending_in_rgb() -> None:
    rng = np.random.default_rng(1)
    background = np.full((8, 8, 3), (40, 90, 160), np.uint8)
    layer = rng.integers(0, 256, (4, 8, 4), dtype=np.uint8)  # random colours and alphas
    frame = frame_of(background)
    blend(frame, overlay(layer, top=2))
    a = layer[..., 3:].astype(np.float64) / 255
    expected = background.astype(np.float64)
    expected[2:6] = expected[2:6] * (1 - a) + layer[..., :3] * a
    reference = frame_of(np.rint(expected).astype(np.uint8))
    assert np.abs(frame.astype(int) - reference.astype(int)).max() <= 1
    assert np.array_equal(frame[:2], reference[:2]) and np.array_equal(frame[6:8], reference[6:8])


def test_overlays_need_even_rows() -> None:
    with pytest.raises(ValueError, match="even"):
        overlay(np.zeros((3, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="even"):
        overlay(np.zeros((2, 8, 4), np.uint8), top=1)
