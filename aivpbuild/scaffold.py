"""``aivpbuild init``: a starter project that builds offline right away."""

from __future__ import annotations

from pathlib import Path

from aivpbuild.api import MANIFEST_NAMES
from aivpbuild.errors import ConfigError
from aivpbuild.fsutil import atomic_write_text

STARTER = """\
# yaml-language-server: $schema=.aivp/project.aivp.schema.json
version: 1
name: {name}
defaults:
  provider: local          # offline animatic renderer; switch to fal/replicate/comfyui later
  resolution: 720p
  aspect_ratio: "16:9"
  duration: 4
  seed: 42
profiles:
  preview: {{resolution: 480p}}
clips:
  shot-01:
    prompt: A quiet street at dawn, mist over wet cobblestones.
    camera: slow push-in
    # image: image/frames/shot-01-ff.png   # add a keyframe for image-to-video
  shot-02:
    prompt: A cyclist crosses the frame, leaving ripples in the puddles.
    camera: pan left
edit:
  output: video/final.mp4
"""

GITIGNORE = ".aivp/\n"


def init_project(directory: str | Path, name: str | None = None) -> Path:
    root = Path(directory).resolve()
    for existing in MANIFEST_NAMES:
        if (root / existing).exists():
            raise ConfigError(f"{root / existing} already exists", hint="edit it, or init another directory")
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("image/frames", "image/characters"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_NAMES[0]
    atomic_write_text(path, STARTER.format(name=name or root.name or "film"))
    from aivpbuild.manifest import schema_text  # for editors; `aivpbuild schema -o` refreshes it

    atomic_write_text(root / ".aivp" / "project.aivp.schema.json", schema_text())
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        atomic_write_text(gitignore, GITIGNORE)
    return path
