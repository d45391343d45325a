"""review_clip and continuity_check on synthetic clips: each defect is flagged by its own check
and by no other; a good clip passes."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aivpbuild.errors import MediaError
from aivpbuild.media.review import (
    ReviewExpect,
    ReviewResult,
    ReviewSettings,
    continuity_check,
    review_clip,
)
from tests.review.clips import FPS, H, W, pan, scene, tone, write

SECONDS = 1.5
N = 18  # frames: 1.5 s at 12 fps

EXPECT = ReviewExpect(width=W, height=H, fps=FPS, duration=SECONDS, audio=True,
                      has_dialogue=True, camera="pan right", camera_fixed=None)


def frames(seed: int = 1, n: int = N, **kwargs: float) -> list[np.ndarray]:
    return list(pan(scene(seed), n, **kwargs))  # type: ignore[arg-type]


def failed(result: ReviewResult) -> set[str]:
    return {c.name for c in result.failed}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    return write(root / "good.mp4", frames(), audio=tone(SECONDS))


@pytest.mark.parametrize("provider", ["local", "fal"])
def test_a_good_clip_passes_every_check_and_reports_values(good: Path, provider: str) -> None:
    result = review_clip(good, replace(EXPECT, provider=provider))
    assert result.passed, result.summary()
    names = [c.name for c in result.checks]
    assert names == ["container", "codec", "resolution", "aspect_ratio", "fps", "duration",
                     "audio", "dialogue_audio", "black_frames", "frozen", "hard_cut"]
    by_name = {c.name: c for c in result.checks}
    assert by_name["container"].value == N
    assert by_name["codec"].value == "h264"
    assert by_name["resolution"].value == "160x90"
    assert by_name["duration"].value == pytest.approx(SECONDS)
    assert by_name["dialogue_audio"].value == pytest.approx(-20.0, abs=1.0)
    assert by_name["black_frames"].value == 0 and by_name["hard_cut"].value == 0
    assert by_name["frozen"].value == 0.0


def test_to_json_has_every_check_with_value_and_threshold(good: Path) -> None:
    data = review_clip(good, EXPECT).to_json()
    text = json.dumps(data, allow_nan=False)  # finite numbers only
    assert json.loads(text) == data
    assert data["passed"] is True
    assert set(data["checks"]["duration"]) == {"passed", "value", "threshold", "message"}
    assert data["checks"]["duration"]["threshold"] == SECONDS


def test_black_frames_are_counted_with_the_first_time(tmp_path: Path) -> None:
    pictures = frames()
    for i in (6, 7, 8):
        pictures[i] = np.zeros_like(pictures[i])
    clip = write(tmp_path / "black.mp4", pictures, audio=tone(SECONDS))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"black_frames"}, result.summary()
    check = result.check("black_frames")
    assert check is not None and check.value == 3
    assert "first at 0.50 s" in check.message
    allowed = review_clip(clip, EXPECT, ReviewSettings(black_max_seconds=0.25))
    assert allowed.passed, allowed.summary()


def test_a_blank_grey_frame_is_flagged_like_a_black_one(tmp_path: Path) -> None:
    pictures = frames()
    pictures[10] = np.full_like(pictures[10], 128)
    clip = write(tmp_path / "blank.mp4", pictures, audio=tone(SECONDS))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"black_frames"}, result.summary()
    assert "first at 0.83 s" in result.failed[0].message


def test_a_frozen_stretch_fails_a_moving_camera(tmp_path: Path) -> None:
    moving = frames(n=24)
    pictures = moving[:6] + [moving[6]] * 14 + moving[7:11]  # the pan stalls 1.17 s, resumes
    clip = write(tmp_path / "frozen.mp4", pictures, audio=tone(2.0))
    expect = replace(EXPECT, duration=2.0)
    result = review_clip(clip, expect)
    assert failed(result) == {"frozen"}, result.summary()
    check = result.failed[0]
    assert check.value == pytest.approx(14 / 12, abs=1e-3) and check.threshold == 1.0
    assert "from 0.50 s" in check.message and "camera 'pan right' should move" in check.message
    looser = ReviewSettings(providers={"local": ReviewSettings.model_validate(
        {"freeze_max_seconds": 1.5})})
    assert review_clip(clip, expect, looser).passed


def test_a_frozen_end_is_an_ease_out_only_for_the_local_renderer(tmp_path: Path) -> None:
    pictures = frames(n=24)
    pictures[9:] = [pictures[9]] * 15  # the last 1.25 s hold still
    clip = write(tmp_path / "tail.mp4", pictures, audio=tone(2.0))
    expect = replace(EXPECT, duration=2.0)
    local = review_clip(clip, expect)
    assert local.passed, local.summary()  # 1.0 s + 25% of 2 s for an eased stop
    model = review_clip(clip, replace(expect, provider="fal"))
    assert failed(model) == {"frozen"}, model.summary()
    assert model.failed[0].threshold == 1.0 and "from 0.75 s" in model.failed[0].message


@pytest.mark.parametrize(("camera", "fixed", "slate", "frozen"), [
    ("static", None, False, False),
    ("locked off, close-up", None, False, False),
    ("slow pan left", True, False, False),   # camera_fixed: the model is asked to hold still
    ("slow pan left", None, True, False),    # a slate
    ("slow pan left", None, False, True),
    ("handheld", None, False, True),
])
def test_a_still_clip_is_frozen_only_when_the_camera_should_move(
        tmp_path: Path, camera: str, fixed: bool | None, slate: bool, frozen: bool) -> None:
    still = [frames(n=1)[0]] * N
    clip = write(tmp_path / "still.mp4", still, audio=tone(SECONDS))
    expect = replace(EXPECT, camera=camera, camera_fixed=fixed, slate=slate)
    result = review_clip(clip, expect)
    assert failed(result) == ({"frozen"} if frozen else set()), result.summary()
    check = result.check("frozen")
    assert check is not None and check.value == pytest.approx(SECONDS)


def test_no_camera_may_hold_still_on_the_local_renderer_but_not_on_a_model(
        tmp_path: Path) -> None:
    clip = write(tmp_path / "still.mp4", [frames(n=1)[0]] * N, audio=tone(SECONDS))
    expect = replace(EXPECT, camera=None)
    assert review_clip(clip, expect).passed
    assert failed(review_clip(clip, replace(expect, provider="replicate"))) == {"frozen"}


def test_a_static_limit_can_be_set(tmp_path: Path) -> None:
    clip = write(tmp_path / "still.mp4", [frames(n=1)[0]] * N, audio=tone(SECONDS))
    settings = ReviewSettings(static_freeze_max_seconds=1.0)
    result = review_clip(clip, replace(EXPECT, camera="static"), settings)
    assert failed(result) == {"frozen"}
    assert "camera 'static' does not move" in result.failed[0].message


def test_too_short(tmp_path: Path) -> None:
    clip = write(tmp_path / "short.mp4", frames(n=6), audio=tone(0.5))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"duration"}, result.summary()
    check = result.failed[0]
    assert check.value == pytest.approx(0.5) and check.threshold == SECONDS
    assert "the request was 1.5 s" in check.message


def test_duration_is_within_one_frame(tmp_path: Path) -> None:
    one_more = write(tmp_path / "plus1.mp4", frames(n=N + 1), audio=tone(SECONDS))
    assert review_clip(one_more, EXPECT).passed
    two_more = write(tmp_path / "plus2.mp4", frames(n=N + 2), audio=tone(SECONDS))
    assert failed(review_clip(two_more, EXPECT)) == {"duration"}
    assert review_clip(two_more, replace(EXPECT, provider="fal")).passed  # models: 2 frames


def test_wrong_size_same_aspect(tmp_path: Path) -> None:
    clip = write(tmp_path / "small.mp4", frames(width=128, height=72), audio=tone(SECONDS))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"resolution"}, result.summary()
    assert result.failed[0].message == "the clip is 128x72, the request was 160x90"


def test_wrong_aspect_ratio(tmp_path: Path) -> None:
    clip = write(tmp_path / "square.mp4", frames(width=90, height=90), audio=tone(SECONDS))
    assert failed(review_clip(clip, EXPECT)) == {"resolution", "aspect_ratio"}


def test_fps_is_exact_for_local_and_reported_for_models(tmp_path: Path) -> None:
    clip = write(tmp_path / "fps15.mp4", frames(n=round(SECONDS * 15)), fps=Fraction(15),
                 audio=tone(SECONDS))
    local = review_clip(clip, EXPECT)
    assert failed(local) == {"fps"}, local.summary()
    model = review_clip(clip, replace(EXPECT, provider="fal"))
    assert model.passed, model.summary()
    check = model.check("fps")
    assert check is not None and check.value == 15.0 and "model picks its rate" in check.message


def test_codec_is_h264_unless_settings_say_otherwise(tmp_path: Path) -> None:
    clip = write(tmp_path / "mpeg4.mp4", frames(), codec="mpeg4", audio=tone(SECONDS))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"codec"}, result.summary()
    assert result.failed[0].value == "mpeg4"
    assert review_clip(clip, EXPECT, ReviewSettings(codec=None)).passed
    assert review_clip(clip, EXPECT, ReviewSettings(codec="mpeg4")).passed


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing"])
def test_an_unreadable_file_is_one_failed_container_check(
        tmp_path: Path, good: Path, damage: str) -> None:
    clip = tmp_path / "bad.mp4"
    data = good.read_bytes()
    if damage == "truncated":
        clip.write_bytes(data[: len(data) * 6 // 10])
    elif damage == "garbage":
        clip.write_bytes(bytes(range(256)) * 40)
    elif damage == "empty":
        clip.write_bytes(b"")
    result = review_clip(clip, EXPECT)
    assert not result.passed
    assert [c.name for c in result.checks] == ["container"]
    message = result.checks[0].message
    assert ("bad.mp4" in message or str(clip) in message) and "rebuild" in message
    if damage == "truncated":
        assert "truncated" in message and f"of {N} frames decode" in message


@pytest.mark.parametrize("faststart", [True, False])
def test_a_file_cut_anywhere_fails_only_the_container_check(
        tmp_path: Path, faststart: bool) -> None:
    """Whatever part of an MP4 survives (index first or last), review reports it, never raises."""
    data = write(tmp_path / "whole.mp4", frames(), audio=tone(SECONDS),
                 faststart=faststart).read_bytes()
    for fraction in (0.02, 0.2, 0.5, 0.9, 0.98):
        clip = tmp_path / f"cut{fraction}.mp4"
        clip.write_bytes(data[: int(len(data) * fraction)])
        result = review_clip(clip, EXPECT)
        assert failed(result) == {"container"}, (fraction, result.summary())


def test_a_cut_matroska_file_is_caught_by_its_declared_duration(tmp_path: Path) -> None:
    """Matroska indexes no frame count: the container's duration tells a short decode."""
    whole = write(tmp_path / "whole.mkv", frames(), container="matroska")
    expect = replace(EXPECT, audio=False, has_dialogue=False)
    assert review_clip(whole, expect).passed
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 9 // 10])
    result = review_clip(cut, expect)
    assert [c.name for c in result.checks] == ["container"], result.summary()
    assert "s of 1.50 s decode" in result.checks[0].message


def test_silent_audio_on_a_dialogue_clip(tmp_path: Path) -> None:
    clip = write(tmp_path / "silent.mp4", frames(), audio=np.zeros((2, 18000), np.float32))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"dialogue_audio"}, result.summary()
    check = result.failed[0]
    assert isinstance(check.value, float) and check.value <= -100
    assert "silent" in check.message
    assert review_clip(clip, replace(EXPECT, has_dialogue=False)).passed  # ambience may be quiet


def test_quiet_but_present_speech_passes(tmp_path: Path) -> None:
    clip = write(tmp_path / "quiet.mp4", frames(), audio=tone(SECONDS, dbfs=-40))
    assert review_clip(clip, EXPECT).passed


def test_missing_audio_track(tmp_path: Path) -> None:
    clip = write(tmp_path / "mute.mp4", frames())
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"audio"}, result.summary()
    assert review_clip(clip, replace(EXPECT, audio=False, has_dialogue=False)).passed


def test_a_hard_cut_inside_the_shot(tmp_path: Path) -> None:
    pictures = frames(1, n=9) + frames(7, n=N - 9)
    clip = write(tmp_path / "cut.mp4", pictures, audio=tone(SECONDS))
    result = review_clip(clip, EXPECT)
    assert failed(result) == {"hard_cut"}, result.summary()
    assert result.failed[0].value == 1
    assert "at 0.75 s" in result.failed[0].message
    twice = write(tmp_path / "cuts.mp4", frames(1, n=6) + frames(7, n=6) + frames(3, n=6),
                  audio=tone(SECONDS))
    check = review_clip(twice, EXPECT).check("hard_cut")
    assert check is not None and check.value == 2 and "0.50 s, 1.00 s" in check.message


def test_a_cut_between_low_contrast_shots_is_found_by_its_histogram(tmp_path: Path) -> None:
    """Two foggy, dim shots: the mean difference stays under cut_min_diff, the luma histogram
    jumps."""
    def fog(pictures: list[np.ndarray], offset: int) -> list[np.ndarray]:
        return [np.clip(p * 0.2 + offset, 0, 255).astype(np.uint8) for p in pictures]

    clip = write(tmp_path / "fog.mp4", fog(frames(1, n=9), 60) + fog(frames(7, n=N - 9), 75),
                 audio=tone(SECONDS))
    result = review_clip(clip, replace(EXPECT, camera="static"))
    assert failed(result) == {"hard_cut"}, result.summary()
    assert "at 0.75 s" in result.failed[0].message


def test_fast_motion_a_flash_and_a_dissolve_are_not_cuts(tmp_path: Path) -> None:
    fast = write(tmp_path / "fast.mp4", frames(step=9.0), audio=tone(SECONDS))
    assert review_clip(fast, EXPECT).passed, review_clip(fast, EXPECT).summary()
    for length in (1, 2):
        flash = frames()
        for i in range(9, 9 + length):
            flash[i] = np.clip(flash[i].astype(int) + 90, 0, 255).astype(np.uint8)
        flashed = write(tmp_path / "flash.mp4", flash, audio=tone(SECONDS))
        assert review_clip(flashed, EXPECT).passed, review_clip(flashed, EXPECT).summary()
    a, b = frames(1), frames(7)
    mix = [np.rint(x * (1 - w) + y * w).astype(np.uint8)
           for x, y, w in zip(a, b, np.clip(np.linspace(-0.5, 1.5, N), 0, 1), strict=True)]
    dissolve = write(tmp_path / "dissolve.mp4", mix, audio=tone(SECONDS))
    assert "hard_cut" not in failed(review_clip(dissolve, EXPECT))


def _keyframe_for(first: np.ndarray, path: Path) -> Path:
    """A 4:3 image, twice the size, whose centre 16:9 band is ``first``: cover-fitting it to
    the clip's size gives the clip's first frame back."""
    band = Image.fromarray(first).resize((2 * W, 2 * H), Image.Resampling.LANCZOS)
    tall = Image.new("RGB", (2 * W, 2 * W * 3 // 4), (200, 30, 30))
    tall.paste(band, (0, (tall.height - band.height) // 2))
    tall.save(path)
    return path


def test_first_frame_against_the_keyframe(tmp_path: Path, good: Path) -> None:
    first = frames(n=1)[0]
    key = _keyframe_for(first, tmp_path / "key.png")
    result = review_clip(good, replace(EXPECT, keyframe=key))
    assert result.passed, result.summary()
    scene_check, framing = result.check("keyframe_scene"), result.check("keyframe_framing")
    assert scene_check is not None and framing is not None
    assert float(scene_check.value or 0) > 0.9 and float(framing.value or 0) > 0.9


def test_a_first_frame_unlike_the_keyframe(tmp_path: Path, good: Path) -> None:
    other = _keyframe_for(frames(seed=7, n=1)[0], tmp_path / "other.png")
    result = review_clip(good, replace(EXPECT, keyframe=other))
    assert failed(result) == {"keyframe_scene", "keyframe_framing"}, result.summary()
    assert "does not look like other.png" in result.failed[0].message


def test_same_colours_reframed_fail_only_framing(tmp_path: Path, good: Path) -> None:
    flipped = np.ascontiguousarray(frames(n=1)[0][::-1, ::-1])  # same pixels, turned around
    key = _keyframe_for(flipped, tmp_path / "flipped.png")
    result = review_clip(good, replace(EXPECT, keyframe=key))
    assert failed(result) == {"keyframe_framing"}, result.summary()


def test_keyframe_thresholds_are_looser_for_models(tmp_path: Path, good: Path) -> None:
    # The keyframe shifted by 6 pixels and re-graded, as a model might return its first frame.
    shifted = frames(n=3)[2].astype(np.float64)
    graded = np.clip(shifted * 0.93 + np.array([8, 3, -3]), 0, 255).astype(np.uint8)
    key = _keyframe_for(graded, tmp_path / "graded.png")
    local = review_clip(good, replace(EXPECT, keyframe=key))
    model = review_clip(good, replace(EXPECT, keyframe=key, provider="fal"))
    assert not local.passed and failed(local) <= {"keyframe_scene", "keyframe_framing"}
    assert model.passed, model.summary()


def test_an_unreadable_keyframe_is_a_media_error_naming_it(tmp_path: Path, good: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(MediaError, match=r"broken\.png"):
        review_clip(good, replace(EXPECT, keyframe=broken))


def test_continuity_between_clips(tmp_path: Path) -> None:
    both = list(pan(scene(1), 2 * N))
    first = write(tmp_path / "a.mp4", both[:N])
    follows = write(tmp_path / "b.mp4", both[N - 1:])  # opens on a's last frame
    elsewhere = write(tmp_path / "c.mp4", frames(seed=7))
    ok = continuity_check(first, follows)
    assert ok.name == "continuity" and ok.passed and float(ok.value or 0) > 0.9, ok
    broken = continuity_check(first, elsewhere)
    assert not broken.passed, broken
    assert "a.mp4 → c.mp4" in broken.message and float(broken.value or 1) < 0.5
    assert broken.threshold == 0.5
    assert continuity_check(first, elsewhere, ReviewSettings(continuity_min_overlap=0.0)).passed


def test_continuity_with_an_unreadable_clip_is_a_failed_check(tmp_path: Path) -> None:
    good = write(tmp_path / "a.mp4", frames())
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 500)
    check = continuity_check(good, bad)
    assert not check.passed and "bad.mp4" in check.message
