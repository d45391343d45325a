"""Small storyboard projects for the compile tests: shot files in both layouts, from values."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
SHOTS = "storyboard/storyboard-final/shots"


def write(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``{relative path: text or bytes}`` under ``root``; returns ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def copy_fixture(name: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / name, dest)
    return dest


def _head(scene_shot: str, scene: str, duration: str, variation: str,
          characters: Sequence[tuple[str, str]], dialogue: str | None) -> str:
    rows = "".join(f"| @{name} | visible | visible | {angle} |\n" for name, angle in characters)
    cast = ("## Characters\n\n| Character | First Frame | Last Frame | Portrait Angle |\n"
            f"|---|---|---|---|\n{rows}\n") if characters else ""
    return (f"# Shot {scene_shot}\n\n## Metadata\n\n| Field | Value |\n|-------|-------|\n"
            f"| Shot ID | {scene_shot} |\n| Scene | {scene} |\n| Variation | {variation} |\n"
            f"| Duration | {duration} |\n\n{cast}"
            "## Audio\n\n| Layer | Content |\n|---|---|\n"
            f"| Dialogue | {dialogue or '(none)'} |\n\n---\n\n")


def layout1(scene_shot: str = "1.1", *, prompt: str = "A quiet street at dawn.",
            camera: str = "slow push-in", duration: str = "5s", scene: str = "street",
            variation: str = "small", frames: str = "first-frame only",
            characters: Sequence[tuple[str, str]] = (), dialogue: str | None = None,
            fallback: str | None = "[Overall] A quiet street.") -> str:
    """A shot whose video section has one ``### Model (Primary)`` heading per model."""
    text = _head(scene_shot, scene, duration, variation, characters, dialogue)
    text += (f"## For aivp-video\n\n### Kling 3.0 (Primary)\n\n```\n[Camera: {camera}, medium "
             f"shot, eye-level]\n{prompt}\n```\n\n**Input frames**: {frames}\n"
             f"**Duration**: {duration}\n**Aspect ratio**: 16:9\n**Camera mode**: unfixed\n")
    if fallback:
        text += f"\n### Seedance 2.0 (Fallback)\n\n```\n{fallback}\n```\n"
    return text


def layout2(scene_shot: str = "1.1", *, prompt: str = "A quiet street at dawn.",
            camera: str = "pan left", duration: str = "5s", scene: str = "street",
            variation: str = "small", frames: str = "first-frame only",
            characters: Sequence[tuple[str, str]] = (), dialogue: str | None = None) -> str:
    """A shot whose video section is ``### Clip Generation`` with bold motion-prompt labels."""
    quoted = "\n".join(f"> {line}" for line in [f"[Camera: {camera}, wide shot]",
                                                *prompt.split("\n")])
    return (_head(scene_shot, scene, duration, variation, characters, dialogue)
            + "## For aivp-video\n\n### Clip Generation\n\n"
            f"**Input frames**: {frames}\n\n"
            f"**Motion prompt** (Kling 3.0 format — primary):\n{quoted}\n\n"
            f"**Parameters**:\n- Duration: {duration}\n- Aspect ratio: 16:9\n"
            f"- Camera: {camera} (unfixed camera = YES)\n")
