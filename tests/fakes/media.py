"""Real small MP4s for the fakes, sized and timed as a request asks, and cached.

:func:`video_for` reads a model input the way the video APIs do: ``resolution`` +
``aspect_ratio`` give the size (the number is the short side: 480p at 16:9 is 854x480, at
9:16 480x854; Hailuo's "768P" is 1366x768; "WxH" is taken as is), ``duration`` ("5", 5,
"8s") or ``num_frames`` the length, ``fps``/``frames_per_second`` the rate (24 otherwise),
``generate_audio`` adds an AAC track. Frames are a moving diagonal ramp (neither blank nor
frozen, so a clip review passes) encoded by x264 ``ultrafast``: cheap, and really H.264
yuv420p. Files are cached by (width, height, frames, fps, audio).
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

_CACHE: dict[tuple[int, int, int, int, bool], bytes] = {}
_LOCK = threading.Lock()
SAMPLE_RATE = 48000


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _short_side(resolution: str) -> int:
    text = resolution.strip().lower()
    if text in ("4k", "uhd"):
        return 2160
    if text in ("2k", "qhd"):
        return 1440
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise ValueError(f"unreadable resolution {resolution!r}")
    return int(digits)


def _ratio(aspect_ratio: Any, image_size: tuple[int, int] | None) -> tuple[float, float]:
    text = str(aspect_ratio or "").strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?:\d+(\.\d+)?", text):
        a, b = (float(x) for x in text.split(":"))
        return a, b
    if image_size:  # "auto" or none: the keyframe decides
        return float(image_size[0]), float(image_size[1])
    return 16.0, 9.0


def size_for(
    payload: dict[str, Any],
    *,
    default_resolution: str = "1080p",
    image_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Pixel size a model returns for the payload's ``resolution`` and ``aspect_ratio``."""
    resolution = str(payload.get("resolution") or default_resolution)
    explicit = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", resolution)
    if explicit:
        return int(explicit.group(1)), int(explicit.group(2))
    if payload.get("width") and payload.get("height"):
        return int(payload["width"]), int(payload["height"])
    short = _short_side(resolution)
    a, b = _ratio(payload.get("aspect_ratio"), image_size)
    if a >= b:
        return _even(short * a / b), _even(short)
    return _even(short), _even(short * b / a)


def fps_for(payload: dict[str, Any], default: int = 24) -> int:
    for name in ("fps", "frames_per_second", "frame_rate"):
        if payload.get(name):
            return max(1, round(float(payload[name])))
    return default


def seconds_for(payload: dict[str, Any], default: float = 5.0) -> float:
    """The requested duration in seconds ("5", 5, "8s"); ``ValueError`` if unreadable."""
    value = payload.get("duration")
    if value is None or value == "":
        return default
    text = str(value).strip().lower().removesuffix("s").strip()
    return float(text)


def frames_for(payload: dict[str, Any], default_seconds: float = 5.0) -> int:
    fps = fps_for(payload)
    for name in ("num_frames", "frames", "length"):
        if payload.get(name):
            return int(payload[name])
    return round(seconds_for(payload, default_seconds) * fps)


def video_for(
    payload: dict[str, Any],
    *,
    default_resolution: str = "1080p",
    image_size: tuple[int, int] | None = None,
) -> bytes:
    """The MP4 a video model would return for this input."""
    width, height = size_for(payload, default_resolution=default_resolution, image_size=image_size)
    return encode(
        width, height, frames_for(payload), fps_for(payload), bool(payload.get("generate_audio"))
    )


def mp4(width: int, height: int, seconds: float, audio: bool = False, fps: int = 24) -> bytes:
    """An MP4 of ``seconds`` at ``fps`` (rounded to whole frames)."""
    return encode(width, height, round(seconds * fps), fps, audio)


def encode(width: int, height: int, frames: int, fps: int = 24, audio: bool = False) -> bytes:
    """An H.264 yuv420p MP4 (plus silent AAC with ``audio``), cached per arguments."""
    key = (width, height, frames, fps, audio)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _encode(*key)
        return _CACHE[key]


def _encode(width: int, height: int, frames: int, fps: int, audio: bool) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.mp4"
        with av.open(str(path), "w", format="mp4") as container:
            video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            sound = (
                container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo") if audio else None
            )
            ramp = (np.arange(width)[None, :] + np.arange(height)[:, None]).astype(np.int32)
            plane = np.empty((height * 3 // 2, width), np.uint8)
            plane[height:] = 128
            step = max(1, min(width, height) // 24)
            for i in range(frames):
                plane[:height] = (ramp + i * step) % 200 + 28
                frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
            if sound is not None:
                total = round(frames / fps * SAMPLE_RATE)
                for start in range(0, total, 1024):
                    block = np.zeros((2, min(1024, total - start)), np.float32)
                    chunk = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                    chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                    container.mux(sound.encode(chunk))
                container.mux(sound.encode(None))
        return path.read_bytes()


def corrupt_mp4(size: int = 4096) -> bytes:
    """Bytes that start like an MP4 (an ``ftyp`` box) but do not decode."""
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    return head + bytes((i * 37 + 11) % 256 for i in range(max(0, size - len(head))))


def image_size(data: bytes) -> tuple[int, int] | None:
    """The pixel size of an uploaded image, or None when it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def duration_ok(seconds: float, limit: float = 60.0) -> bool:
    return math.isfinite(seconds) and 0 < seconds <= limit
