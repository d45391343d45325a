"""Small JPEG thumbnails of a clip's first and last frames, and of a keyframe image.

Only the frames needed are decoded: the first frame, then (after a seek to the last
keyframe before the end) the rest of the clip up to its last frame. Each thumbnail is written
atomically; a clip that cannot be read raises MediaError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aivpbuild.errors import MediaError
from aivpbuild.fsutil import atomic_path

THUMB_WIDTH = 320  # pixels; smaller pictures are kept at their own size
QUALITY = 82


def _size(width: int, height: int, limit: int) -> tuple[int, int]:
    """``width`` x ``height`` shrunk to at most ``limit`` wide (never enlarged)."""
    if width <= limit:
        return width, height
    return limit, max(2, round(limit * height / width))


def _save(image: Any, out: Path) -> None:
    with atomic_path(out, durable=False) as tmp:
        image.save(tmp, format="JPEG", quality=QUALITY)


def _first_and_last(video: Path) -> tuple[Any, Any]:
    """The first and last decoded frames of ``video`` (PyAV frames)."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            # One decoding thread: a fifth less CPU than FFmpeg's slice threads on small clips,
            # and thumbnails are made in the background (or many clips at once by `report`).
            stream.codec_context.thread_count = 1
            first = next(container.decode(stream), None)
            if first is None:
                raise MediaError(f"{video.name} has no video frames")
            last = _last_frame(container, stream, skip_nonref=True)
            if last is None:  # the last frame is one nothing refers to: decode everything
                last = _last_frame(container, stream, skip_nonref=False)
            return first, last or first
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError, StopIteration) as exc:
        raise MediaError(f"cannot read frames from {video.name}: {exc}") from None


def _last_frame(container: Any, stream: Any, *, skip_nonref: bool) -> Any:
    """The last frame in display order, decoded from the last keyframe on. With
    ``skip_nonref`` frames no other frame refers to (most B-frames) are not decoded, a third
    less work; None then when the last frame was such a frame."""
    if stream.duration:
        container.seek((stream.start_time or 0) + stream.duration, stream=stream, backward=True)
    stream.codec_context.skip_frame = "NONREF" if skip_nonref else "DEFAULT"
    last, last_pts = None, None
    for packet in container.demux(stream):  # ends with an empty packet that flushes the decoder
        if packet.pts is not None and (last_pts is None or packet.pts > last_pts):
            last_pts = packet.pts
        for frame in packet.decode():
            last = frame
    if skip_nonref and last is not None and last_pts is not None and last.pts != last_pts:
        return None
    return last


def clip_thumbs(video: Path, first_out: Path, last_out: Path, *, width: int = THUMB_WIDTH) -> None:
    """Write the first and last frames of ``video`` as JPEG thumbnails."""
    from PIL import Image

    from aivpbuild.media.review import frame_rgb

    first, last = _first_and_last(video)
    size = _size(first.width, first.height, width)
    for frame, out in ((first, first_out), (last, last_out)):
        _save(Image.fromarray(frame_rgb(frame, *size)), out)


def image_thumb(image: Path, out: Path, *, width: int = THUMB_WIDTH) -> None:
    """Write a JPEG thumbnail of a keyframe image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as picture:
            rgb = picture.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"cannot read the image {image.name}: {exc}") from None
    size = _size(rgb.width, rgb.height, width)
    _save(rgb.resize(size, Image.Resampling.LANCZOS) if size != rgb.size else rgb, out)
