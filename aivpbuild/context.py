"""The templating context for prompts: the manifest's ``context`` values, with sheet globs.

``context.characters`` / ``context.scenes`` may name globs of markdown sheets
(``script/characters/*.md``); they load as ``characters.<slug>`` / ``scenes.<slug>``.
Every other value is passed to the templates as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

SHEET_KINDS: dict[str, Literal["character", "scene"]] = {"characters": "character", "scenes": "scene"}


def build_context(raw: Mapping[str, Any], root: Path, source: Path,
                  files_read: list[str] | None = None) -> dict[str, Any]:
    """The context dict; project-relative paths of sheet files read are appended to ``files_read``."""
    context = dict(raw)
    for key, kind in SHEET_KINDS.items():
        pattern = raw.get(key)
        if isinstance(pattern, str):
            from aivpbuild.sheets import load_sheets

            context[key] = load_sheets(root, pattern, kind)
            if files_read is not None:
                files_read.extend(p.relative_to(root).as_posix() for p in sorted(root.glob(pattern)))
                files_read.append(str(Path(pattern).parent))  # a new sheet changes the directory
    return context
