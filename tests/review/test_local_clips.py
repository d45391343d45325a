"""Clips from the local renderer pass review: eased moves, dissolves, handheld, slates, static
shots, with and without a keyframe."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from aivpbuild.media.render import RenderSpec, render_clip
from aivpbuild.media.review import ReviewExpect, review_clip
from tests.review.clips import scene

FPS = Fraction(12)


@pytest.fixture(scope="module")
def keyframes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keys")
    first, last = root / "ff.png", root / "lf.png"
    Image.fromarray(scene(3, 480, 320)).save(first)  # 3:2, cover-fitted to 16:9
    Image.fromarray(scene(4, 480, 320)).save(last)
    return first, last


@pytest.mark.parametrize(("camera", "mode", "seconds"), [
    ("slow push in", "i2v", 1.0),
    ("pan left", "i2v", 2.0),
    ("slow pull out", "first+last", 2.0),
    ("static", "first+last", 1.0),  # a dissolve over 7 frames is no cut
    ("handheld", "i2v", 1.0),
    ("fast orbit right", "i2v", 1.0),
    (None, "i2v", 1.0),
    ("static", "i2v", 2.0),
    ("static", "first+last", 2.0),
    ("slow tilt up", "t2v", 1.0),
    ("static", "t2v", 2.0),
])
def test_local_clips_pass(tmp_path: Path, keyframes: tuple[Path, Path], camera: str | None,
                          mode: str, seconds: float) -> None:
    image = None if mode == "t2v" else keyframes[0]
    end = keyframes[1] if mode == "first+last" else None
    out = tmp_path / "clip.mp4"
    render_clip(RenderSpec("shot-01", "A lighthouse at dusk.", camera, seconds, FPS, 160, 90,
                           image=image, end_image=end, audio=True), out)
    expect = ReviewExpect(160, 90, FPS, seconds, audio=True, has_dialogue=False, camera=camera,
                          camera_fixed=None, slate=image is None, keyframe=image)
    result = review_clip(out, expect)
    assert result.passed, result.summary()
    if image is not None:
        framing = result.check("keyframe_framing")
        assert framing is not None and float(framing.value or 0) > 0.95


def test_a_static_local_shot_is_not_frozen_but_a_moving_camera_is_checked(
        tmp_path: Path, keyframes: tuple[Path, Path]) -> None:
    out = tmp_path / "static.mp4"
    render_clip(RenderSpec("s", "p", "static", 2.0, FPS, 160, 90, image=keyframes[0]), out)
    still = ReviewExpect(160, 90, FPS, 2.0, audio=False, has_dialogue=False, camera="static",
                         camera_fixed=None)
    result = review_clip(out, still)
    frozen = result.check("frozen")
    assert result.passed and frozen is not None and frozen.value == pytest.approx(2.0)
    moving = ReviewExpect(160, 90, FPS, 2.0, audio=False, has_dialogue=False,
                          camera="slow pan left", camera_fixed=None)
    assert [c.name for c in review_clip(out, moving).failed] == ["frozen"]
