"""Single frames out of a clip: exact decoded frames as RGB arrays or PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import av
import numpy as np

from aivpbuild.errors import MediaError
from aivpbuild.fsutil import atomic_path
from aivpbuild.media.encode import to_rgb

Which = Literal["first", "last", "middle"]


def read_frame(video: Path, which: Which) -> np.ndarray:
    """The first, middle (index count // 2) or last decoded frame of ``video``, as RGB uint8
    (H x W x 3) converted with the file's colour matrix. Frames are decoded one at a time:
    memory stays at one frame whatever the clip's length."""
    if which not in get_args(Which):
        raise ValueError(f"which must be one of {get_args(Which)}, not {which!r}")
    try:
        wanted = _count(video) // 2 if which == "middle" else None
        with av.open(str(video)) as container:
            kept = None
            for index, frame in enumerate(container.decode(video=0)):
                kept = frame
                if which == "first" or index == wanted:
                    break
            if kept is None:
                raise MediaError(f"{video.name} has no video frames")
            return to_rgb(kept)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"cannot read a frame from {video.name}: {exc}",
                         hint="rebuild the clip it comes from") from None


def _count(video: Path) -> int:
    """Video frames present (packets with data), without decoding them."""
    with av.open(str(video)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def extract_frame(video: Path, which: Which, out_png: Path) -> None:
    """Write that frame as a PNG, atomically (temp file + rename); the same frame always gives
    the same bytes."""
    from PIL import Image

    image = Image.fromarray(read_frame(video, which), "RGB")
    with atomic_path(out_png) as tmp:
        image.save(tmp, format="PNG")
