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
        verify(out, width=320, height=180, frames=48, fps=Fraction(25), audio=False, frame_tolerance=0)
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
    parts = [clip(tmp_path, "a"), clip(tmp_path, "bb", duration=1.5), clip(tmp_path, "ccc", duration=0.5)]
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
