"""Real small MP4s for the fake providers, sized and timed as a request asks (cached)."""

from __future__ import annotations

import re
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

_CACHE: dict[tuple[int, int, int, bool], bytes] = {}
_LOCK = threading.Lock()


def size_for(payload: dict[str, Any]) -> tuple[int, int]:
    """Pixel size a model would return for the payload's resolution and aspect ratio."""
    resolution = str(payload.get("resolution") or "1080p").lower()
    short = 2160 if resolution == "4k" else int(re.sub(r"\D", "", resolution) or 1080)
    a, b = (int(x) for x in str(payload.get("aspect_ratio") or "16:9").split(":"))
    if a >= b:
        return round(short * a / b / 2) * 2, short
    return short, round(short * b / a / 2) * 2


def seconds_for(payload: dict[str, Any]) -> float:
    return float(re.sub(r"[^\d.]", "", str(payload.get("duration") or 5)) or 5)


def mp4(width: int, height: int, seconds: float, audio: bool = False, fps: int = 24) -> bytes:
    """An H.264 (and AAC) MP4 of flat frames: cheap to make, real to decode."""
    frames = round(seconds * fps)
    key = (width, height, frames, audio)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "out.mp4"
            with av.open(str(path), "w", format="mp4") as container:
                video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
                video.width, video.height, video.pix_fmt = width, height, "yuv420p"
                sound = container.add_stream("aac", rate=48000, layout="stereo") if audio else None
                if sound is not None:
                    sound.codec_context.open()
                for i in range(frames):
                    rgb = np.full((height, width, 3), (40 + i % 50, 90, 160), np.uint8)
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts, frame.time_base = i, Fraction(1, fps)
                    for packet in video.encode(frame):
                        container.mux(packet)
                for packet in video.encode(None):
                    container.mux(packet)
                if sound is not None:
                    total = round(seconds * 48000)
                    for start in range(0, total, 1024):
                        block = np.zeros((2, min(1024, total - start)), np.float32)
                        chunk = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                        chunk.sample_rate, chunk.pts = 48000, start
                        for packet in sound.encode(chunk):
                            container.mux(packet)
                    for packet in sound.encode(None):
                        container.mux(packet)
            data = path.read_bytes()
        _CACHE[key] = data
        return data
