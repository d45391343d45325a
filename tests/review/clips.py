"""Tiny synthetic clips for the review tests, written with PyAV: a colourful scene filmed by a
panning camera, and the ways a generation goes wrong (black frames, a freeze, a cut, ...)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

W, H, FPS = 160, 90, Fraction(12)
RATE = 48000


def scene(seed: int, width: int = 2 * W, height: int = 2 * H) -> np.ndarray:
    """A smooth, colourful picture with shapes on it; each seed has its own palette."""
    rng = np.random.default_rng(seed)
    hue = rng.random(3)
    coarse = rng.random((6, 8, 3)) * 0.5 + hue * 0.5
    base = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height),
                                                                    Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(14):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(6, height // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            draw.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=colour)
    return np.asarray(base)


def pan(picture: np.ndarray, frames: int, *, step: float = 3.0, width: int = W,
        height: int = H) -> Iterator[np.ndarray]:
    """A camera panning right across ``picture`` at ``step`` pixels a frame."""
    pil = Image.fromarray(picture)
    for i in range(frames):
        x = i * step
        yield np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR,
                                    box=(x, 20.0, x + width, 20.0 + height)))


def tone(seconds: float, dbfs: float = -20.0) -> np.ndarray:
    """A stereo 220 Hz tone that pulses like speech, at about ``dbfs`` RMS (2 x N floats)."""
    t = np.arange(round(seconds * RATE)) / RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    wave = np.sin(2 * np.pi * 220 * t) * envelope
    wave *= 10 ** (dbfs / 20) / np.sqrt(np.mean(wave**2))
    return np.stack([wave, wave]).astype(np.float32)


def write(path: Path, frames: Iterable[np.ndarray], *, fps: Fraction = FPS,
          codec: str = "libx264", audio: np.ndarray | None = None,
          faststart: bool = True, container: str = "mp4") -> Path:
    """Encode RGB frames (and optional 48 kHz stereo samples) into an MP4 (index first, as
    aivpbuild and most providers write them, unless ``faststart`` is off) or another
    ``container`` format."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    options = {"movflags": "+faststart"} if faststart and container == "mp4" else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        video = out.add_stream(codec, rate=fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "crf": "18"}
        sound = None
        if audio is not None:
            sound = out.add_stream("aac", rate=RATE, layout="stereo")
            assert isinstance(sound, av.AudioStream)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / fps
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None and audio is not None:
            for start in range(0, audio.shape[1], 1024):
                chunk = np.ascontiguousarray(audio[:, start:start + 1024])
                block = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                block.sample_rate, block.pts = RATE, start
                out.mux(sound.encode(block))
            out.mux(sound.encode(None))
    return path
