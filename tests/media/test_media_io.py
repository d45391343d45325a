"""Probe and verify, exact frame extraction, and assembly of the edit."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aivpbuild.errors import MediaError
from aivpbuild.media.assemble import assemble
from aivpbuild.media.encode import rgb_frames
from aivpbuild.media.frames import extract_frame, read_frame
from aivpbuild.media.probe import verify
from aivpbuild.media.render import RenderSpec, render_clip


def clip(tmp: Path, name: str, *, duration: float = 1.0, size: tuple[int, int] = (160, 90),
         fps: Fraction = Fraction(24), audio: bool = True, camera: str = "pan left") -> Path:
    out = tmp / f"{name}.mp4"
    render_clip(RenderSpec(name, f"clip {name}", camera, duration, fps, size[0], size[1],
                           audio=audio, seed=len(name)), out)
    return out


def test_verify_accepts_a_match_and_names_every_mismatch(tmp_path: Path) -> None:
    out = clip(tmp_path, "a")
    assert verify(out, width=160, height=90, frames=24, fps=Fraction(24), audio=True).frames == 24
    with pytest.raises(MediaError) as err:
        verify(out, width=320, height=180, frames=48, fps=Fraction(25), audio=False,
               frame_tolerance=0)
    message = str(err.value)
    assert "a.mp4" in message and "160x90, the request was 320x180" in message
    assert "24 frames, the request was 48" in message and "25 fps" not in message.split(";")[0]
    assert "it has an audio track, none was requested" in message
    assert verify(out, width=160, height=90, frames=25, fps=Fraction(24)).frames == 24  # ±1 frame


def test_truncated_and_garbage_files_are_media_errors(tmp_path: Path) -> None:
    out = clip(tmp_path, "a")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(out.read_bytes()[: out.stat().st_size // 3])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 5000)
    for bad in (truncated, garbage):
        with pytest.raises(MediaError, match=bad.name):
            verify(bad, width=160, height=90, frames=24, fps=Fraction(24))


def test_extracted_frames_are_exactly_the_decoded_frames(tmp_path: Path) -> None:
    out = clip(tmp_path, "a", camera="push in")
    decoded = list(rgb_frames(out))
    for which, index in (("first", 0), ("last", -1), ("middle", len(decoded) // 2)):
        png = tmp_path / f"{which}.png"
        extract_frame(out, which, png)  # type: ignore[arg-type]
        assert np.array_equal(np.asarray(Image.open(png)), decoded[index])
        assert np.array_equal(read_frame(out, which), decoded[index])  # type: ignore[arg-type]
    again = tmp_path / "again.png"
    extract_frame(out, "last", again)
    assert again.read_bytes() == (tmp_path / "last.png").read_bytes()


def test_assembly_of_matching_clips_copies_video_and_keeps_duration(tmp_path: Path) -> None:
    parts = [clip(tmp_path, "a"), clip(tmp_path, "bb", duration=1.5),
             clip(tmp_path, "ccc", duration=0.5)]
    info = assemble(parts, tmp_path / "final.mp4")
    assert info.frames == 24 + 36 + 12
    assert info.duration == pytest.approx(3.0, abs=1 / 24)
    assert info.has_audio and info.audio_duration == pytest.approx(3.0, abs=1 / 24)
    decoded = list(rgb_frames(tmp_path / "final.mp4"))
    originals = [f for p in parts for f in rgb_frames(p)]
    assert all(np.array_equal(a, b) for a, b in zip(decoded, originals, strict=True)), "stream copy"


def test_assembly_re_encodes_mixed_formats_and_fills_missing_audio(tmp_path: Path) -> None:
    parts = [clip(tmp_path, "a"), clip(tmp_path, "silent", audio=False),
             clip(tmp_path, "big", size=(320, 180), duration=0.5),
             clip(tmp_path, "pal", fps=Fraction(25), duration=1.0)]
    info = assemble(parts, tmp_path / "final.mp4")
    assert (info.width, info.height, info.fps) == (160, 90, Fraction(24))
    assert info.duration == pytest.approx(1 + 1 + 0.5 + 1, abs=1 / 24)
    assert info.has_audio and info.audio_duration == pytest.approx(info.duration, abs=1 / 24)


def test_assembly_needs_clips(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no clips"):
        assemble([], tmp_path / "x.mp4")


def foreign_clip(path: Path, colour: tuple[int, int, int], *, size: tuple[int, int] = (160, 90),
                 frames: int = 24, fps: int = 24, matrix: str = "bt709") -> Path:
    """A clip from "another encoder": different x264 settings, optionally BT.601 tagged."""
    import av
    from av.video.reformatter import Colorspace

    tag, space = (1, Colorspace.ITU709) if matrix == "bt709" else (6, Colorspace.ITU601)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps,
                                      options={"preset": "ultrafast", "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = tag, tag, tag, 1
        rgb = np.full((size[1], size[0], 3), colour, np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=space, dst_color_range=1)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_assembly_copies_matching_clips_and_re_encodes_only_the_odd_one(tmp_path: Path) -> None:
    a, c = clip(tmp_path, "a"), clip(tmp_path, "c", duration=0.5)
    odd = foreign_clip(tmp_path / "odd.mp4", (200, 30, 30), frames=12)
    info = assemble([a, odd, c], tmp_path / "final.mp4")
    assert info.frames == 24 + 12 + 12 and info.duration == pytest.approx(2.0, abs=1 / 24)
    assert info.has_audio and info.audio_duration == pytest.approx(2.0, abs=1 / 24)
    decoded = list(rgb_frames(tmp_path / "final.mp4"))
    copied = list(rgb_frames(a)) + list(rgb_frames(c))
    assert all(np.array_equal(x, y) for x, y in
               zip(decoded[:24] + decoded[36:], copied, strict=True)), "a and c are copied"
    middle = decoded[30][45, 80].astype(int)
    assert np.abs(middle - (200, 30, 30)).max() <= 4, middle


def test_assembly_fits_another_shape_without_distortion(tmp_path: Path) -> None:
    a = clip(tmp_path, "a", audio=False)
    square = foreign_clip(tmp_path / "square.mp4", (255, 255, 255), size=(90, 90), frames=6)
    info = assemble([a, square], tmp_path / "final.mp4")
    assert (info.width, info.height, info.frames, info.has_audio) == (160, 90, 30, False)
    last = read_frame(tmp_path / "final.mp4", "last")
    row = last[45, :, :].mean(axis=1)
    assert (row[:30] < 20).all() and (row[130:] < 20).all(), "pillarboxed"
    assert (row[40:120] > 235).all(), "the picture is centred"
    assert abs(int((row > 128).sum()) - 90) <= 2, "a square stays square"


def tone_clip(path: Path, seconds: float) -> Path:
    from aivpbuild.media.encode import VideoWriter

    n = round(seconds * 48000)
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
    with VideoWriter(path, 160, 90, Fraction(24), audio=True,
                     audio_samples=np.stack([wave, wave])) as writer:
        for _ in range(round(seconds * 24)):
            writer.write(np.zeros((90, 160, 3), np.uint8))
    return path


def test_assembly_keeps_audio_in_sync_across_silent_and_re_encoded_clips(tmp_path: Path) -> None:
    from tests.media.test_render import _audio_rms

    silent = clip(tmp_path, "silent", audio=False, duration=0.5)
    pal = foreign_clip(tmp_path / "pal.mp4", (0, 0, 255), fps=25, frames=25)
    tone = tone_clip(tmp_path / "tone.mp4", 1.0)
    out = tmp_path / "final.mp4"
    info = assemble([silent, pal, tone], out)
    assert info.frames == 12 + 24 + 24 and info.duration == pytest.approx(2.5, abs=1 / 24)
    assert _audio_rms(out, 0.0, 1.45) < 1e-3, "silence where the clips had no audio"
    assert _audio_rms(out, 1.55, 2.45) > 0.15, "the tone plays with its own pictures"
    assert info.audio_duration == pytest.approx(2.5, abs=0.03)


def test_frames_decode_with_the_files_own_colour_matrix(tmp_path: Path) -> None:
    colour = (20, 40, 200)
    bt601 = foreign_clip(tmp_path / "sd.mp4", colour, frames=2, matrix="bt601")
    centre = read_frame(bt601, "first")[45, 80].astype(int)
    assert np.abs(centre - colour).max() <= 3, centre


def test_unreadable_videos_are_media_errors_for_frames_too(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 5000)
    with pytest.raises(MediaError, match=r"garbage\.mp4"):
        extract_frame(garbage, "last", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
