"""Provider keys: found, never exported, never printed.

``load_key("FAL_KEY", root)`` looks in the environment, then ``<project>/.env``, ``~/.env`` and
``~/.aivp/.env`` (read with python-dotenv's ``dotenv_values``, so nothing is exported to
``os.environ`` or child processes). Every loaded key is remembered so :func:`redact` can scrub
it from any message, log line or file aivpbuild writes.
"""

from __future__ import annotations

import os
from pathlib import Path

FAL_KEY = "FAL_KEY"
REPLICATE_API_TOKEN = "REPLICATE_API_TOKEN"
SECRET_NAMES = (FAL_KEY, REPLICATE_API_TOKEN)
#: Shorter values are not scrubbed (replacing "ab" everywhere would garble every message).
MIN_SECRET_LENGTH = 6
MASK = "***"

_LOADED: set[str] = set()


def env_files(root: Path) -> list[Path]:
    """The .env files searched after the environment, first match wins."""
    return [root / ".env", Path.home() / ".env", Path.home() / ".aivp" / ".env"]


def load_key(var: str, project_root: Path) -> str | None:
    """The value of ``var`` from the environment or the first .env file that has it."""
    value = (os.environ.get(var) or "").strip()
    if not value:
        from dotenv import dotenv_values

        for path in env_files(project_root):
            if path.is_file():
                value = (dotenv_values(path).get(var) or "").strip()
                if value:
                    break
    if value:
        remember(value)
    return value or None


def remember(secret: str) -> None:
    """Scrub ``secret`` from everything :func:`redact` sees (a key passed in directly)."""
    if secret.strip():
        _LOADED.add(secret.strip())


def redact(text: str) -> str:
    """``text`` with every secret aivpbuild has loaded (and any in the environment) replaced."""
    secrets = set(_LOADED)
    secrets.update(v.strip() for name in SECRET_NAMES if (v := os.environ.get(name)))
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text
