"""A contact sheet: one row per clip with its id and its first, middle and last frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from aivpbuild.fsutil import atomic_path
from aivpbuild.media.encode import rgb_frames

LABEL_WIDTH = 150
GAP = 6


def _three_frames(video: Path) -> list[Image.Image]:
    frames = list(rgb_frames(video))
    picks = [frames[0], frames[len(frames) // 2], frames[-1]]
    return [Image.fromarray(f) for f in picks]


def contact_sheet(clips: Sequence[tuple[str, Path]], out_png: Path, *, thumb_width: int = 240) -> None:
    """Write the sheet for ``clips`` (id, video path) to ``out_png`` (atomically)."""
    rows = [(clip_id, _three_frames(path)) for clip_id, path in clips]
    thumb_h = max((round(thumb_width * f[0].height / f[0].width) for _, f in rows), default=thumb_width // 2)
    width = LABEL_WIDTH + 3 * (thumb_width + GAP) + GAP
    height = GAP + len(rows) * (thumb_h + GAP) + 28
    sheet = Image.new("RGB", (width, height), (18, 18, 22))
    draw = ImageDraw.Draw(sheet)
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=12)
    for x, label in zip(range(3), ("first", "middle", "last"), strict=True):
        draw.text((LABEL_WIDTH + GAP + x * (thumb_width + GAP), 6), label, font=small, fill=(150, 150, 160))
    for r, (clip_id, frames) in enumerate(rows):
        y = 28 + r * (thumb_h + GAP)
        draw.text((GAP * 2, y + thumb_h // 2 - 10), clip_id, font=font, fill=(240, 220, 120))
        for c, frame in enumerate(frames):
            thumb = frame.resize((thumb_width, thumb_h), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (LABEL_WIDTH + GAP + c * (thumb_width + GAP), y))
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
