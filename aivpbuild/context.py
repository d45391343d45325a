"""The templating context for prompts: the manifest's ``context`` values, with sheet globs.

``context.characters`` / ``context.scenes`` may name globs of markdown sheets
(``script/characters/*.md``); they load as ``characters.<slug>`` / ``scenes.<slug>``.
Every other value is passed to the templates as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SHEET_KINDS = {"characters": "character", "scenes": "scene"}


def build_context(raw: Mapping[str, Any], root: Path, source: Path) -> dict[str, Any]:
    context = dict(raw)
    for key, kind in SHEET_KINDS.items():
        pattern = raw.get(key)
        if isinstance(pattern, str):
            from aivpbuild.sheets import load_sheets

            context[key] = load_sheets(root, pattern, kind)  # type: ignore[arg-type]
    return context
