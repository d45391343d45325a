"""The contact sheet: size, layout, the right frames in the right cells, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aivpbuild.media.contact_sheet import (
    CAPTION,
    GAP,
    HEADER,
    LABEL_WIDTH,
    contact_sheet,
    thumb_size,
)
from tests.review.clips import write

RED, GREEN, BLUE = (220, 40, 40), (40, 200, 60), (40, 60, 220)


def coloured_clip(path: Path, size: tuple[int, int], n: int = 9) -> Path:
    """Frames 0..n//2-1 red, frame n//2 green, the rest blue except the last, which is white:
    first = red, middle = green, last = white."""
    width, height = size
    colours = [RED] * (n // 2) + [GREEN] + [BLUE] * (n - n // 2 - 2) + [(235, 235, 235)]
    frames = [np.full((height, width, 3), c, np.uint8) for c in colours]
    return write(path, frames)


def cell_colour(sheet: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return sheet[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4].reshape(-1, 3).mean(0)


def near(colour: np.ndarray, expected: tuple[int, int, int]) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() < 12)


def test_layout_and_frames(tmp_path: Path) -> None:
    clips = [("shot-01", coloured_clip(tmp_path / "a.mp4", (160, 90))),
             ("shot-02", coloured_clip(tmp_path / "b.mp4", (64, 112), n=7))]
    out = tmp_path / "video" / "contact-sheet.png"
    contact_sheet(clips, out, thumb_width=120)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    rows = [thumb_size(160, 90, 120), thumb_size(64, 112, 120)]
    assert rows == [(120, 68), (69, 120)]  # landscape: 120 wide; portrait: 120 tall
    width = GAP + LABEL_WIDTH + 3 * (120 + GAP)
    height = HEADER + sum(h + CAPTION + GAP for _, h in rows) + GAP
    assert sheet.shape == (height, width, 3)
    y = HEADER
    for thumb_w, thumb_h in rows:
        for column, expected in enumerate((RED, GREEN, (235, 235, 235))):
            x = GAP + LABEL_WIDTH + column * (120 + GAP) + (120 - thumb_w) // 2
            assert near(cell_colour(sheet, x, y, thumb_w, thumb_h), expected), (y, column)
        y += thumb_h + CAPTION + GAP
    label = sheet[HEADER:HEADER + 20, GAP:LABEL_WIDTH]
    assert label.max() > 150  # the id is written in the label column


def test_same_clips_give_the_same_bytes_and_leave_no_temp_files(tmp_path: Path) -> None:
    clip = coloured_clip(tmp_path / "a.mp4", (96, 54))
    first, second = tmp_path / "out" / "one.png", tmp_path / "out" / "two.png"
    contact_sheet([("a", clip)], first)
    contact_sheet([("a", clip)], second)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.png", "two.png"]


def test_a_container_without_a_frame_count_still_finds_its_middle(tmp_path: Path) -> None:
    size = (96, 54)
    colours = [RED] * 4 + [GREEN] + [BLUE] * 3 + [(235, 235, 235)]
    clip = write(tmp_path / "a.mkv", [np.full((54, 96, 3), c, np.uint8) for c in colours],
                 container="matroska")
    out = tmp_path / "sheet.png"
    contact_sheet([("mkv", clip)], out, thumb_width=96)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    x = GAP + LABEL_WIDTH + (96 + GAP)
    assert near(cell_colour(sheet, x, HEADER, *size), GREEN)


def test_an_unreadable_clip_gets_a_row_not_an_exception(tmp_path: Path) -> None:
    good = coloured_clip(tmp_path / "a.mp4", (96, 54))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 300)
    out = tmp_path / "sheet.png"
    contact_sheet([("good", good), ("bad", bad), ("missing", tmp_path / "none.mp4")], out,
                  thumb_width=64)
    with Image.open(out) as image:
        assert image.height == HEADER + 3 * (36 + CAPTION + GAP) + GAP


def test_thumb_width_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="thumb_width"):
        contact_sheet([], tmp_path / "x.png", thumb_width=4)
