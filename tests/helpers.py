"""Helpers that build small projects from dicts and run the CLI in-process."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aivpbuild.cli import main


def keyframe(path: Path, colour: tuple[int, int, int] = (40, 120, 200), size: tuple[int, int] = (64, 36),
             pattern: int = 0) -> Path:
    """Write a small PNG keyframe (a colour with a few shapes; ``pattern`` varies it)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle([w // 4 + pattern, h // 4, w // 2 + pattern, h // 2], fill=(250, 240, 30))
    draw.ellipse([w // 2, h // 2, w - 4, h - 4], fill=(200, 30, 60))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


#: Settings that keep test clips tiny and fast to render.
TINY = {"provider": "local", "resolution": "64x36", "duration": 1, "fps": 8, "seed": 1}


def manifest(clips: Mapping[str, Mapping[str, Any]], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "name": "test", "defaults": dict(TINY), "clips": dict(clips)}
    data.update(top)
    return data


def write_project(root: Path, data: Mapping[str, Any] | str, files: Mapping[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
    (root / "project.aivp.yaml").write_text(text, "utf-8")
    for rel, content in (files or {}).items():
        path = root / rel
        if content == "png":
            keyframe(path)
        elif isinstance(content, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(content), "utf-8")
    return root


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Run:
    """Run ``aivpbuild ARGS`` in-process; returns exit code and captured output."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return Run(code, out.getvalue(), err.getvalue())


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to prove nothing was written)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
