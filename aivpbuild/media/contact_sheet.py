"""A contact sheet: one row per clip with its id and its first, middle and last frames.

Each clip is decoded once; only the three chosen frames are converted to RGB, straight at
thumbnail size. A clip that cannot be read gets a row saying so instead of stopping the sheet.
The PNG is written atomically and is byte-identical for the same clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from aivpbuild.fsutil import atomic_path

LABEL_WIDTH = 160  # the id column
GAP = 8  # between cells and around the sheet
HEADER = 24  # the row naming the columns
CAPTION = 18  # the time under each thumbnail
COLUMNS = ("first", "middle", "last")
BACKGROUND, PANEL = (18, 18, 22), (32, 32, 38)
_ID, _TEXT, _DIM, _ERROR = (240, 220, 120), (225, 225, 230), (150, 150, 160), (255, 110, 100)


@dataclass(frozen=True)
class _Row:
    clip_id: str
    height: int  # thumbnail box height
    thumbs: tuple[Image.Image, ...] = ()
    times: tuple[float, ...] = ()
    facts: str = ""
    error: str | None = None


def thumb_size(width: int, height: int, thumb_width: int) -> tuple[int, int]:
    """A thumbnail's size: ``thumb_width`` wide, or for portrait clips ``thumb_width`` tall."""
    if height <= width:
        return thumb_width, max(2, round(thumb_width * height / width))
    return max(2, round(thumb_width * width / height)), thumb_width


def _frame_count(container: Any, video: Any) -> int:
    """Frames the index declares, else the number of video packets (a demux without decoding)."""
    if video.frames:
        return int(video.frames)
    count = sum(1 for packet in container.demux(video) if packet.size)
    container.seek(0)
    return count


def _row(clip_id: str, path: Path, thumb_width: int) -> _Row:
    import av

    from aivpbuild.media.review import frame_rgb

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            middle_index = _frame_count(container, video) // 2
            picked: dict[str, Any] = {}
            index = -1
            for index, frame in enumerate(container.decode(video)):
                if index == 0:
                    picked["first"] = frame
                if index == middle_index:
                    picked["middle"] = frame
                picked["last"] = frame
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return _Row(clip_id, thumb_width * 9 // 16, error=f"{path.name} is unreadable: {reason}")
    if index < 0:
        return _Row(clip_id, thumb_width * 9 // 16, error=f"{path.name}: no frame decodes")
    picked.setdefault("middle", picked["last"])  # a truncated file ends before its middle
    first = picked["first"]
    width, height = thumb_size(first.width, first.height, thumb_width)
    frames = [picked[name] for name in COLUMNS]
    thumbs = tuple(Image.fromarray(frame_rgb(f, width, height)) for f in frames)
    start = first.time or 0.0
    times = tuple((f.time or 0.0) - start for f in frames)
    facts = f"{first.width}x{first.height}  {index + 1} frames"
    return _Row(clip_id, height, thumbs, times, facts)


def _rows(clips: Sequence[tuple[str, Path]], thumb_width: int) -> list[_Row]:
    """Every clip's row, clips decoded in parallel threads (PyAV decodes without the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if len(clips) < 2:
        return [_row(clip_id, path, thumb_width) for clip_id, path in clips]
    with ThreadPoolExecutor(max_workers=min(len(clips), os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda clip: _row(clip[0], clip[1], thumb_width), clips))


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(clips: Sequence[tuple[str, Path]], out_png: Path, *,
                  thumb_width: int = 240) -> None:
    """Write the sheet for ``clips`` (id, video path), in the given order, to ``out_png``."""
    if thumb_width < 16:
        raise ValueError(f"thumb_width must be at least 16 pixels, got {thumb_width}")
    rows = _rows(clips, thumb_width)
    width = GAP + LABEL_WIDTH + len(COLUMNS) * (thumb_width + GAP)
    height = HEADER + sum(row.height + CAPTION + GAP for row in rows) + GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    big, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)
    for c, name in enumerate(COLUMNS):
        draw.text((GAP + LABEL_WIDTH + c * (thumb_width + GAP), 6), name, font=small, fill=_DIM)
    y = HEADER
    for row in rows:
        draw.text((GAP, y + 4), _fit_text(draw, row.clip_id, big, LABEL_WIDTH - GAP), font=big,
                  fill=_ID)
        if row.error:
            message = _fit_text(draw, row.error, small, len(COLUMNS) * thumb_width)
            draw.text((GAP + LABEL_WIDTH, y + row.height // 2 - 6), message, font=small,
                      fill=_ERROR)
        else:
            draw.text((GAP, y + 26), _fit_text(draw, row.facts, small, LABEL_WIDTH - GAP),
                      font=small, fill=_DIM)
        for c, (thumb, time) in enumerate(zip(row.thumbs, row.times, strict=True)):
            x = GAP + LABEL_WIDTH + c * (thumb_width + GAP)
            draw.rectangle([x, y, x + thumb_width - 1, y + row.height - 1], fill=PANEL)
            sheet.paste(thumb, (x + (thumb_width - thumb.width) // 2, y))
            draw.text((x, y + row.height + 2), f"{time:.2f} s", font=small, fill=_TEXT)
        y += row.height + CAPTION + GAP
    with atomic_path(out_png, durable=False) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
