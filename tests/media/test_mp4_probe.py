"""The MP4 box reader behind probe(): the same facts as PyAV, truncation found from the index,
and everything it cannot vouch for left to PyAV."""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from aivpbuild.errors import MediaError
from aivpbuild.media.encode import VideoWriter
from aivpbuild.media.mp4 import read_mp4
from aivpbuild.media.probe import _probe_with_av, probe
from tests.fakes.media import corrupt_mp4, video_for

FAKES: dict[str, dict[str, Any]] = {
    "480p-4s": {"resolution": "480p", "duration": "4"},
    "720p-portrait-30fps-audio": {"resolution": "720p", "aspect_ratio": "9:16", "duration": "5",
                                  "fps": 30, "generate_audio": True},
    "odd-size-25fps-audio": {"resolution": "142x78", "duration": "1", "fps": 25, "generate_audio": True},
}


def write_with_av(path: Path, *, codec: str = "libx264", fmt: str = "mp4", pix_fmt: str = "yuv420p",
                  frames: int = 12, rate: Fraction = Fraction(24), size: tuple[int, int] = (64, 48),
                  container_options: dict[str, str] | None = None,
                  options: dict[str, str] | None = None) -> Path:
    """A short clip of noise written by PyAV (any codec, container and muxer flags)."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        for i in range(frames):
            rgb = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def fake(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(video_for(FAKES[name]))
    return path


def rendered(tmp_path: Path) -> Path:
    """A clip from the renderer's writer: faststart, B-frames (an edit list), AAC audio."""
    path = tmp_path / "rendered.mp4"
    with VideoWriter(path, 96, 54, Fraction(25), audio=True) as writer:
        for i in range(30):
            writer.write(np.full((54, 96, 3), i * 8, np.uint8))
    return path


def boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """The top-level boxes: (type, start, size)."""
    found, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        size = struct.unpack_from(">Q", data, offset + 8)[0] if size == 1 else size or len(data) - offset
        found.append((kind, offset, size))
        offset += size
    return found


def box(data: bytes, kind: bytes) -> tuple[int, int]:
    return next((start, size) for k, start, size in boxes(data) if k == kind)


@pytest.mark.parametrize("name", sorted(FAKES))
def test_the_fakes_read_the_same_as_with_pyav(tmp_path: Path, name: str) -> None:
    path = fake(tmp_path, name)
    info = read_mp4(path)
    assert info is not None and info == _probe_with_av(path) == probe(path)


def test_a_rendered_clip_with_an_edit_list_reads_the_same(tmp_path: Path) -> None:
    path = rendered(tmp_path)
    data = path.read_bytes()
    assert box(data, b"moov")[0] < box(data, b"mdat")[0] and b"elst" in data and b"ctts" in data
    info = read_mp4(path)
    assert info is not None and info == _probe_with_av(path)
    assert (info.frames, info.fps, info.has_audio, info.audio_duration) == (30, 25, True, 1.2)


WRITERS: dict[str, Callable[[Path], Path]] = {
    "faststart": lambda p: write_with_av(p, container_options={"movflags": "faststart"}),
    "quicktime": lambda p: write_with_av(p.with_suffix(".mov"), fmt="mov"),
    "29.97fps": lambda p: write_with_av(p, rate=Fraction(30000, 1001)),
    "full-range": lambda p: write_with_av(p, pix_fmt="yuvj420p"),
    "4:2:2": lambda p: write_with_av(p, pix_fmt="yuv422p"),
    "10-bit": lambda p: write_with_av(p, pix_fmt="yuv420p10le"),
    "cropped": lambda p: write_with_av(p, size=(70, 38)),
    "key-frames-and-b-frames": lambda p: write_with_av(p, frames=30, options={"g": "8", "bf": "2"}),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_h264_variants_read_the_same_as_with_pyav(tmp_path: Path, kind: str) -> None:
    path = WRITERS[kind](tmp_path / "clip.mp4")
    info = read_mp4(path)
    assert info is not None and info == _probe_with_av(path)


def test_64_bit_and_to_the_end_box_sizes(tmp_path: Path) -> None:
    data = fake(tmp_path, "480p-4s").read_bytes()  # ftyp, free (8 bytes), mdat, moov
    free, mdat = box(data, b"free"), box(data, b"mdat")
    assert free[1] == 8 and mdat[0] == free[0] + 8
    large = bytearray(data)  # the free box makes room for a 64-bit mdat header
    large[free[0]: free[0] + 16] = struct.pack(">I4sQ", 1, b"mdat", mdat[1] + 8)
    moov = box(data, b"moov")
    to_end = bytearray(data)
    to_end[moov[0]: moov[0] + 4] = b"\0\0\0\0"
    faststart = bytearray(rendered(tmp_path).read_bytes())
    mdat_start = box(bytes(faststart), b"mdat")[0]
    faststart[mdat_start: mdat_start + 4] = b"\0\0\0\0"
    for name, variant in (("large", large), ("moov-to-end", to_end), ("mdat-to-end", faststart)):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(bytes(variant))
        info = read_mp4(path)
        assert info is not None and info == _probe_with_av(path), name


def test_an_edit_list_is_applied_like_ffmpeg(tmp_path: Path) -> None:
    data = fake(tmp_path, "720p-portrait-30fps-audio").read_bytes()
    audio_edit = [i for i in range(len(data)) if data.startswith(b"elst", i)][1] + 12
    segment = struct.unpack_from(">I", data, audio_edit)[0]
    for shorter in (segment - 1, segment // 2):
        path = tmp_path / f"edit-{shorter}.mp4"
        path.write_bytes(data[:audio_edit] + struct.pack(">I", shorter) + data[audio_edit + 4:])
        info = read_mp4(path)
        assert info is not None and info == _probe_with_av(path)
        assert info.audio_duration == pytest.approx(shorter / 1000)


def cuts(data: bytes) -> dict[str, int]:
    mdat = box(data, b"mdat")
    moov = box(data, b"moov")
    found = {"one byte short": len(data) - 1, "inside mdat": mdat[0] + mdat[1] // 2,
             "mdat header only": mdat[0] + 8}
    if moov[0] > mdat[0]:
        found |= {"inside moov": moov[0] + moov[1] // 2, "before moov": moov[0]}
    return found


@pytest.mark.parametrize("layout", ["moov-last", "faststart"])
def test_a_cut_file_is_never_read_as_whole(tmp_path: Path, layout: str) -> None:
    whole = fake(tmp_path, "720p-portrait-30fps-audio") if layout == "moov-last" else rendered(tmp_path)
    data = whole.read_bytes()
    for where, cut in cuts(data).items():
        path = tmp_path / "cut.mp4"
        path.write_bytes(data[:cut])
        with pytest.raises(MediaError, match=r"cut\.mp4 (is truncated|is not a readable video)") as err:
            probe(path)
        if where in ("one byte short", "inside mdat"):
            assert "truncated" in str(err.value), where
            assert "rebuild or re-download" in str(err.value)


def test_a_cut_names_the_frames_present(tmp_path: Path) -> None:
    data = rendered(tmp_path).read_bytes()  # the index first, then the frames in order
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MediaError, match=r"half\.mp4 is truncated: \d+ of 30 frames are present"):
        read_mp4(path)
    path.write_bytes(data[:-1])  # the last audio sample is short, every frame is there
    with pytest.raises(MediaError, match=rf"has {len(data) - 1} bytes but its media data ends at byte {len(data)}"):
        read_mp4(path)


def test_files_it_cannot_vouch_for_go_to_pyav(tmp_path: Path) -> None:
    webm = write_with_av(tmp_path / "clip.webm", codec="libvpx-vp9", fmt="webm")
    mpeg4 = write_with_av(tmp_path / "mpeg4.mp4", codec="mpeg4")
    fragmented = write_with_av(tmp_path / "fragmented.mp4",
                               container_options={"movflags": "frag_keyframe+empty_moov"})
    for path in (webm, mpeg4, fragmented):
        assert read_mp4(path) is None
        assert probe(path) == _probe_with_av(path) and probe(path).frames == 12
    assert probe(mpeg4).codec == "mpeg4"
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(corrupt_mp4())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for bad in (noise, corrupt, empty):
        assert read_mp4(bad) is None
        with pytest.raises(MediaError, match=rf"{bad.name} is not a readable video"):
            probe(bad)
    with pytest.raises(MediaError, match=r"missing\.mp4 is not a readable video"):
        probe(tmp_path / "missing.mp4")
