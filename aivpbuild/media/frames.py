"""Single frames out of a clip: exact decoded frames as RGB arrays or PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from aivpbuild.errors import MediaError
from aivpbuild.fsutil import atomic_path
from aivpbuild.media.encode import rgb_frames

Which = Literal["first", "last", "middle"]


def read_frame(video: Path, which: Which) -> np.ndarray:
    """The first, middle or last decoded frame (RGB uint8, converted with BT.709)."""
    frames = rgb_frames(video)
    if which == "first":
        first = next(frames, None)
        if first is None:
            raise MediaError(f"{video.name} has no frames")
        return first
    decoded = list(frames)
    if not decoded:
        raise MediaError(f"{video.name} has no frames")
    return decoded[-1] if which == "last" else decoded[len(decoded) // 2]


def extract_frame(video: Path, which: Which, out_png: Path) -> None:
    """Write that frame as a PNG (atomically; same frame → same bytes)."""
    from PIL import Image

    image = Image.fromarray(read_frame(video, which), "RGB")
    with atomic_path(out_png) as tmp:
        image.save(tmp, format="PNG")
