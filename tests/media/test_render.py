"""The local animatic renderer: camera moves measured from decoded frames, smoothness,
colour accuracy, exact timing, determinism, dissolves and slates."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aivpbuild.media.camera import SHIFT, ZOOM, ease, parse_camera
from aivpbuild.media.encode import rgb_frames
from aivpbuild.media.probe import probe
from aivpbuild.media.render import RenderSpec, render_clip
from tests.media.motion import shift, ssim, texture, zoom

W, H = 320, 180


def keyframe(tmp: Path, array: np.ndarray, name: str = "key.png") -> Path:
    path = tmp / name
    Image.fromarray(array).save(path)
    return path


def render(tmp: Path, camera: str | None, *, image: Path | None = None, end: Path | None = None,
           duration: float = 1.0, fps: Fraction = Fraction(24), size: tuple[int, int] = (W, H),
           audio: bool = False, name: str = "out.mp4",
           seed: int = 3) -> tuple[Path, list[np.ndarray]]:
    spec = RenderSpec("shot-01", "a test prompt", camera, duration, fps, size[0], size[1],
                      image, end, audio, None, seed)
    out = tmp / name
    render_clip(spec, out)
    return out, list(rgb_frames(out))


@pytest.fixture(scope="module")
def textured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("key")
    return keyframe(tmp, texture(640, 360, seed=5))


@pytest.mark.parametrize(("camera", "sign_x", "sign_y"), [
    ("pan left", +1, 0), ("pan right", -1, 0), ("truck left", +1, 0),
    ("tilt up", 0, +1), ("tilt down", 0, -1), ("pedestal up", 0, +1), ("crane up", 0, +1),
    ("crane down", 0, -1), ("orbit left", +1, 0), ("arc right", -1, 0),
])
def test_translating_moves_go_the_right_way_by_the_right_amount(
    tmp_path: Path, textured: Path, camera: str, sign_x: int, sign_y: int
) -> None:
    _, frames = render(tmp_path, camera, image=textured)
    steps = [shift(a, b) for a, b in itertools.pairwise(frames)]  # robust to zoom
    dx, dy = sum(s[0] for s in steps), sum(s[1] for s in steps)
    plan = parse_camera(camera)
    zoom_start = plan.at(0.0)[2]
    travel = SHIFT * W * zoom_start  # the view centre moves SHIFT of the canvas, seen at zoom
    across = 3.0 if any(m.zoom for m in plan.moves) else 1.5  # a zooming move blurs the other axis
    if sign_x:
        assert np.sign(dx) == sign_x and abs(dx) == pytest.approx(travel, rel=0.25), (dx, dy)
        assert abs(dy) < across
    if sign_y:
        assert np.sign(dy) == sign_y, (dx, dy)
        assert abs(dy) == pytest.approx(SHIFT * H * zoom_start, rel=0.3), (dx, dy)
        assert abs(dx) < across


@pytest.mark.parametrize(("camera", "expected"), [
    ("push in", 1 + ZOOM), ("slow dolly in", (1 + 0.55 * ZOOM)), ("zoom out", 1 / (1 + ZOOM)),
    ("fast pull out", 1 / (1 + 1.6 * ZOOM)),
])
def test_zoom_moves_scale_by_the_requested_amount(tmp_path: Path, textured: Path, camera: str,
                                                  expected: float) -> None:
    _, frames = render(tmp_path, camera, image=textured)
    assert zoom(frames[0], frames[-1]) == pytest.approx(expected, abs=0.02)


def test_static_is_still_and_first_frame_matches_the_keyframe(tmp_path: Path,
                                                              textured: Path) -> None:
    _, frames = render(tmp_path, "static", image=textured)
    diffs = [np.abs(f.astype(int) - frames[0].astype(int)).mean() for f in frames]
    assert max(diffs) < 0.5
    reference = np.asarray(Image.open(textured).convert("RGB").resize((W, H),
                                                                     Image.Resampling.LANCZOS))
    assert ssim(frames[0], reference) > 0.95


def test_slow_pan_is_smooth_monotonic_and_eased(tmp_path: Path, textured: Path) -> None:
    _, frames = render(tmp_path, "slow pan right", image=textured, duration=2.0)
    # the middle of the frame shows keyframe content throughout
    centre = (slice(H // 10, H - H // 10), slice(W // 10, W - W // 10))
    positions = np.array([shift(frames[0][centre], f[centre])[0] for f in frames])
    steps = np.diff(positions)
    assert (steps <= 0.05).all(), "content must move one way only (no back-steps)"
    t = np.linspace(0, 1, len(frames))
    shape = np.array([ease(x) for x in t])
    amplitude = float(positions @ shape / (shape @ shape))  # least-squares fit of A·ease(t)
    residual = np.abs(positions - amplitude * shape)
    assert residual.max() < 0.2, f"max residual {residual.max():.3f} px"
    assert abs(amplitude) > 10
    middle = steps[len(steps) // 3: 2 * len(steps) // 3]
    assert (np.abs(middle) > 0.3).all(), "no stalls mid-move"


def test_handheld_shakes_but_stays_put(tmp_path: Path, textured: Path) -> None:
    _, frames = render(tmp_path, "handheld", image=textured, duration=2.0)
    xs = [shift(frames[0], f)[0] for f in frames]
    assert np.ptp(xs) > 0.5 and max(abs(x) for x in xs) < 6


@pytest.mark.parametrize("colour", [(0, 255, 0), (128, 128, 128), (255, 0, 0), (20, 40, 200)])
def test_flat_colours_survive_the_bt709_round_trip(tmp_path: Path,
                                                   colour: tuple[int, int, int]) -> None:
    key = keyframe(tmp_path, np.full((90, 160, 3), colour, np.uint8))
    _, frames = render(tmp_path, "static", image=key, duration=0.25)
    centre = frames[0][H // 2, W // 2].astype(int)
    assert np.abs(centre - np.array(colour)).max() <= 3, centre


@pytest.mark.parametrize(("duration", "fps", "frames"), [
    (1.0, Fraction(24), 24), (2.5, Fraction(25), 62), (1.0, Fraction(24000, 1001), 24),
    (0.5, Fraction(30), 15), (5.0, Fraction(24000, 1001), 120),
])
def test_exact_frame_count_rate_and_duration(tmp_path: Path, duration: float, fps: Fraction,
                                             frames: int) -> None:
    out, _ = render(tmp_path, None, duration=duration, fps=fps, audio=True, size=(160, 90))
    info = probe(out)
    assert info.frames == frames and info.fps == fps
    assert (info.width, info.height, info.codec, info.pix_fmt) == (160, 90, "h264", "yuv420p")
    assert info.has_audio and info.audio_duration == pytest.approx(frames / fps, abs=0.03)
    assert info.duration == pytest.approx(frames / fps, abs=1 / float(fps))


def test_colour_tags_and_faststart(tmp_path: Path) -> None:
    import av

    out, _ = render(tmp_path, None, size=(160, 90))
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (1, 1, 1)  # BT.709
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)


def test_same_spec_same_bytes(tmp_path: Path, textured: Path) -> None:
    a, _ = render(tmp_path, "slow push-in, handheld", image=textured, audio=True, name="a.mp4")
    b, _ = render(tmp_path, "slow push-in, handheld", image=textured, audio=True, name="b.mp4")
    assert a.read_bytes() == b.read_bytes()


def test_end_image_dissolves_from_first_to_last(tmp_path: Path) -> None:
    first = keyframe(tmp_path, texture(320, 180, seed=1), "ff.png")
    last = keyframe(tmp_path, texture(320, 180, seed=2), "lf.png")
    _, frames = render(tmp_path, "static", image=first, end=last)
    ref_first = np.asarray(Image.open(first).convert("RGB"))
    ref_last = np.asarray(Image.open(last).convert("RGB"))
    assert ssim(frames[0], ref_first) > 0.9 and ssim(frames[-1], ref_last) > 0.9
    assert ssim(frames[len(frames) // 2], ref_first) < 0.9


def test_any_keyframe_shape_is_cover_fitted_without_distortion(tmp_path: Path) -> None:
    tall = np.zeros((400, 100, 3), np.uint8)
    tall[:, 40:60] = 255  # a vertical white bar, 20% of the width
    key = keyframe(tmp_path, tall)
    _, frames = render(tmp_path, "static", image=key, duration=0.25)
    row = frames[0][H // 2, :, 0] > 128
    bar_width = row.sum()
    assert bar_width == pytest.approx(0.2 * W, abs=3), "horizontal scale must equal vertical scale"


def test_unknown_camera_wording_falls_back_with_a_note(tmp_path: Path, textured: Path) -> None:
    spec = RenderSpec("s", "p", "wobbly swirl", 0.5, Fraction(24), 160, 90, textured)
    report = render_clip(spec, tmp_path / "x.mp4")
    assert report.notes == ("camera 'wobbly swirl' not understood ('wobbly swirl'): "
                            "using a gentle push-in",)


def test_slate_has_a_running_timecode_and_a_moving_background(tmp_path: Path) -> None:
    _, frames = render(tmp_path, "pan left", duration=1.0)
    corner = (slice(0, 12), slice(0, W))  # above the text panel: only background shows there
    assert np.abs(frames[0][corner].astype(int) - frames[-1][corner].astype(int)).mean() > 1
    _, still = render(tmp_path, "static", duration=1.0, name="still.mp4")
    assert np.abs(still[0].astype(int) - still[-1].astype(int)).sum() > 0  # the timecode ticks


def test_corrupt_keyframe_is_a_clear_media_error(tmp_path: Path) -> None:
    from aivpbuild.errors import MediaError

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(MediaError, match=r"cannot read keyframe bad\.png"):
        render_clip(RenderSpec("s", "p", None, 0.5, Fraction(24), 160, 90, bad), tmp_path / "x.mp4")


def _audio_rms(path: Path, start: float, end: float) -> float:
    import av

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        chunks = [f.to_ndarray() for frame in container.decode(audio=0)
                  for f in resampler.resample(frame)]
    samples = np.concatenate(chunks, axis=1)[:, int(start * 48000): int(end * 48000)]
    return float(np.sqrt((samples ** 2).mean()))


DIALOGUE = '[Mara, calm]: "Delivery for apartment nine."'


def test_dialogue_is_spoken_at_the_start_when_a_speech_engine_exists(tmp_path: Path) -> None:
    from aivpbuild.media import speech

    if speech.engine_id() == "none":
        pytest.skip("no offline speech engine is installed (CI installs espeak-ng)")
    out = tmp_path / "talk.mp4"
    spec = RenderSpec("s", "p", "static", 3.0, Fraction(24), 160, 90, None, None, True, DIALOGUE)
    report = render_clip(spec, out)
    assert report.notes == ()
    assert _audio_rms(out, 0.0, 1.0) > 0.02 and _audio_rms(out, 2.5, 3.0) < 1e-4
    assert probe(out).audio_duration == pytest.approx(3.0, abs=0.03)


def test_without_a_speech_engine_dialogue_becomes_silence_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aivpbuild.media import speech

    monkeypatch.setattr(speech, "_engine", lambda: None)
    out = tmp_path / "quiet.mp4"
    spec = RenderSpec("s", "p", "static", 1.0, Fraction(24), 160, 90, None, None, True, DIALOGUE)
    report = render_clip(spec, out)
    assert any("no offline speech engine" in n for n in report.notes)
    assert probe(out).has_audio and _audio_rms(out, 0.0, 1.0) == 0.0


def test_end_image_ends_exactly_on_the_last_keyframe_while_the_camera_moves(tmp_path: Path) -> None:
    first = keyframe(tmp_path, texture(480, 270, seed=1), "ff.png")
    last = keyframe(tmp_path, texture(480, 270, seed=2), "lf.png")
    _, frames = render(tmp_path, "push in, pan left", image=first, end=last)
    size = (W, H)
    ref_first = np.asarray(Image.open(first).resize(size, Image.Resampling.LANCZOS))
    ref_last = np.asarray(Image.open(last).resize(size, Image.Resampling.LANCZOS))
    assert ssim(frames[0], ref_first) > 0.95 and ssim(frames[-1], ref_last) > 0.95
    # the move carries on through the dissolve: the last keyframe's layer is magnified at the end
    mixed = frames[len(frames) // 2]
    assert ssim(mixed, ref_first) < 0.8 and ssim(mixed, ref_last) < 0.8
    assert zoom(frames[-4], frames[-1]) > 1.0


@pytest.mark.parametrize(("size", "duration", "problem"), [
    ((161, 90), 1.0, "must be positive and even"), ((160, 0), 1.0, "must be positive and even"),
    ((160, 90), 0.01, "less than one frame"),
])
def test_impossible_specs_are_media_errors(tmp_path: Path, size: tuple[int, int], duration: float,
                                           problem: str) -> None:
    from aivpbuild.errors import MediaError

    spec = RenderSpec("shot-09", "p", None, duration, Fraction(24), size[0], size[1])
    with pytest.raises(MediaError, match=f"clip shot-09: .*{problem}"):
        render_clip(spec, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_handheld_is_seeded(tmp_path: Path, textured: Path) -> None:
    _, a = render(tmp_path, "handheld", image=textured, seed=1, name="a.mp4", size=(160, 90))
    _, b = render(tmp_path, "handheld", image=textured, seed=2, name="b.mp4", size=(160, 90))
    assert np.abs(a[-1].astype(int) - b[-1].astype(int)).mean() > 1


def test_slate_timecode_counts_frames_at_the_nominal_rate() -> None:
    from aivpbuild.media.slate import timecode

    assert timecode(0, Fraction(24)) == "00:00:00"
    assert timecode(23, Fraction(24)) == "00:00:23" and timecode(24, Fraction(24)) == "00:01:00"
    assert timecode(24 * 61 + 5, Fraction(24000, 1001)) == "01:01:05"
    assert timecode(30, Fraction(30000, 1001)) == "00:01:00"


def test_frames_are_yuv420p_planes_for_keyframes_and_slates(textured: Path) -> None:
    from aivpbuild.media.render import frames

    spec = RenderSpec("s", "p", "pan left", 0.25, Fraction(24), 160, 90, textured)
    planes = list(frames(spec))
    assert len(planes) == 6 and planes[0].shape == (135, 160) and planes[0].dtype == np.uint8
    slate = list(frames(RenderSpec("s", "p", "pan left", 0.25, Fraction(24), 160, 90)))
    assert len(slate) == 6 and slate[0].shape == (135, 160)
    bar = [int((f[89, :] > 150).sum()) for f in slate]  # the progress bar grows along luma row 89
    assert bar == sorted(bar) and bar[0] < 40 and bar[-1] == 160
