"""Writing MP4s with PyAV: H.264 yuv420p tagged and converted as BT.709, AAC audio, faststart.

Output is deterministic for the same frames (single-threaded x264, no creation time), so the
same input gives the same bytes and the same cache key maps to the same file.
"""

from __future__ import annotations

import platform
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

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
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 1, 1, 1, 1  # BT.709, tv
        self.video = stream
        self.audio = None
        self.audio_samples = audio_samples
        if audio:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            self.audio.codec_context.open()  # the header needs every codec open before video muxes

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame (H x W x 3)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
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


def rgb_to_yuv709(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 (H x W x 3, even sizes) → BT.709 limited-range Y (H x W) and 2x2-averaged
    Cb, Cr (H/2 x W/2), the conversion the encoder's colour tags promise."""
    f = rgb.astype(np.float32) / 255.0
    luma = f @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    cb = (f[..., 2] - luma) / 1.8556
    cr = (f[..., 0] - luma) / 1.5748
    h, w = luma.shape

    def half(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    y = np.clip(np.rint(16 + 219 * luma), 0, 255).astype(np.uint8)
    u = np.clip(np.rint(128 + 224 * half(cb)), 0, 255).astype(np.uint8)
    v = np.clip(np.rint(128 + 224 * half(cr)), 0, 255).astype(np.uint8)
    return y, u, v


def encode_audio(container: Any, stream: Any, samples: np.ndarray) -> None:
    """Encode stereo float samples (2 x N at 48 kHz) into ``stream`` and mux them."""
    chunk = 1024
    for start in range(0, samples.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]),
                                           format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def rgb_frames(video: Path) -> Any:
    """Decode a video's frames as RGB arrays, converting with the BT.709 matrix."""
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            rgb = frame.reformat(format="rgb24", src_colorspace=Colorspace.ITU709,
                                 src_color_range=ColorRange.MPEG, interpolation=_EXACT, threads=1)
            yield rgb.to_ndarray()
