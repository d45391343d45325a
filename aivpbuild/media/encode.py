"""Writing MP4s with PyAV: H.264 yuv420p tagged and converted as BT.709, AAC audio, faststart.

Output is deterministic for the same frames (single-threaded x264, no creation time), so the
same input gives the same bytes and the same cache key maps to the same file.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from aivpbuild.media.yuv import rgb_to_yuv709

__all__ = ["AUDIO_RATE", "VideoWriter", "encode_audio", "rgb_frames", "rgb_to_yuv709", "to_rgb",
           "writer_extradata"]

AUDIO_RATE = 48000
# veryfast with the cheapest sub-pixel search and no sub-partitions: ~40% faster than veryfast at
# about the same size for these smooth synthetic moves (superfast was faster but "pops" on stills).
# Reproducible bytes: one thread, no threaded lookahead, and on x86 no SIMD above SSE4.2 (x264's
# AVX float paths in macroblock-tree rate control gave different bytes from run to run).
_X264_PARAMS = "threads=1:sync-lookahead=0:subme=1:partitions=none"
if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
    _X264_PARAMS += ":asm=sse4.2"
X264_OPTIONS = {"preset": "veryfast", "crf": "20", "threads": "1", "x264-params": _X264_PARAMS}
#: Exact, reproducible RGB → YUV conversion (swscale's default BT.601 matrix shifts colours).
_EXACT = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT


class VideoWriter:
    """``with VideoWriter(path, w, h, fps, audio=...) as w: w.write(rgb)`` → a finished MP4."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, *,
                 audio: bool = False, audio_samples: np.ndarray | None = None) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.path = path
        self.width, self.height, self.fps = width, height, Fraction(fps)
        self.frames = 0
        self.container = av.open(str(path), "w", format="mp4",
                                 options={"movflags": "+faststart"})
        stream = self.container.add_stream("libx264", rate=self.fps, options=dict(X264_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        self.time_base = 1 / self.fps  # the muxer may change the stream's; frames keep this
        stream.time_base = self.time_base
        ctx = stream.codec_context
        ctx.thread_count = 1  # x264 with several threads is not bit-reproducible
        # BT.709 primaries, transfer and matrix; limited ("tv") range
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 1, 1, 1, 1
        self.video = stream
        self.audio = None
        self.audio_samples = audio_samples
        if audio:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            self.audio.codec_context.open()  # the header needs every codec open before video muxes

    def write(self, image: np.ndarray) -> None:
        """Append one frame: RGB uint8 (H x W x 3), or yuv420p planes ((H*3/2) x W)."""
        if image.ndim == 2:
            self.write_yuv(image)
            return
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        yuv = frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709,
                             dst_color_range=ColorRange.MPEG, interpolation=_EXACT, threads=1)
        yuv.pts = self.frames
        yuv.time_base = self.time_base
        for packet in self.video.encode(yuv):
            self.container.mux(packet)
        self.frames += 1

    def write_yuv(self, planes: np.ndarray) -> None:
        """Append one frame already in BT.709 limited-range yuv420p ((H*3/2) x W bytes)."""
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = self.frames
        frame.time_base = self.time_base
        for packet in self.video.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def _write_audio(self) -> None:
        assert self.audio is not None
        total = round(self.frames / self.fps * AUDIO_RATE)
        samples = np.zeros((2, total), dtype=np.float32)
        if self.audio_samples is not None:
            speech = self.audio_samples[:, :total]
            samples[:, : speech.shape[1]] = speech
        encode_audio(self.container, self.audio, samples)

    def close(self) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        if self.audio is not None:
            self._write_audio()
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.container.close()


def writer_extradata(width: int, height: int, fps: Fraction) -> bytes:
    """The H.264 parameter sets (avcC) :class:`VideoWriter` writes for this size and rate: a
    clip that has exactly these can be joined to its output without re-encoding."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.mp4"
        with VideoWriter(path, width, height, fps) as writer:
            writer.write(np.zeros((height, width, 3), np.uint8))
        with av.open(str(path)) as container:
            return bytes(container.streams.video[0].codec_context.extradata or b"")


def encode_audio(container: Any, stream: Any, samples: np.ndarray | Iterable[np.ndarray]) -> None:
    """Encode stereo float samples at 48 kHz (one 2 x N array, or consecutive 2 x N blocks)
    into ``stream`` and mux them; blocks are joined seamlessly into 1024-sample frames."""
    blocks = [samples] if isinstance(samples, np.ndarray) else samples
    chunk, pending, pts = 1024, np.zeros((2, 0), np.float32), 0

    def send(data: np.ndarray) -> None:
        nonlocal pts
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, dtype=np.float32),
                                           format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        pts += data.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)

    for block in blocks:
        pending = np.concatenate([pending, block], axis=1) if pending.shape[1] else block
        whole = pending.shape[1] // chunk * chunk
        for start in range(0, whole, chunk):
            send(pending[:, start:start + chunk])
        pending = pending[:, whole:]
    if pending.shape[1]:
        send(pending)
    for packet in stream.encode(None):
        container.mux(packet)


def rgb_frames(video: Path) -> Iterator[np.ndarray]:
    """Decode a video's frames as RGB arrays, converting with the matrix and range the file is
    tagged with (BT.709 for untagged HD, BT.601 for untagged SD, as players assume)."""
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            yield to_rgb(frame)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """One decoded frame as RGB uint8 (H x W x 3), converted with its own colour tags."""
    rgb = frame.reformat(format="rgb24", src_colorspace=_matrix(frame),
                         src_color_range=_range(frame), interpolation=_EXACT, threads=1)
    return rgb.to_ndarray()


def _matrix(frame: av.VideoFrame) -> Colorspace:
    tag = int(frame.colorspace)
    if tag == 1:
        return Colorspace.ITU709
    if tag in (5, 6):
        return Colorspace.ITU601
    if tag in (9, 10):
        return Colorspace.BT2020
    if tag == 7:
        return Colorspace.SMPTE240M
    return Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601


def _range(frame: av.VideoFrame) -> ColorRange:
    full = int(frame.color_range) == 2 or str(frame.format.name).startswith("yuvj")
    return ColorRange.JPEG if full else ColorRange.MPEG
