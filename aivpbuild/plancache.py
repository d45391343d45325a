"""A cache of the resolved plan, so a no-op run skips YAML parsing, validation and planning.

Keyed by the manifest's sha256, the profile and a fingerprint of aivpbuild's own code; valid
only while every file the planner looked at still exists (or not) as it did, and every sheet
file it read is unchanged. Stored as a pickle in ``.aivp/plans/`` (local state, never shared).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aivpbuild.fsutil import atomic_write_bytes

FORMAT = 1


@dataclass
class CachedPlan:
    key: tuple[Any, ...]
    plan: Any
    order: list[str]
    #: project-relative path -> (exists, is a symlink) as the planner saw it
    paths: dict[str, tuple[bool, bool]]
    #: project-relative path -> (inode, mtime_ns, size) of files whose content shaped the plan
    files: dict[str, tuple[int, int, int]]


@cache
def code_fingerprint() -> tuple[int, int]:
    """Newest mtime and count of aivpbuild's own files: editing the package invalidates plans."""
    package = Path(__file__).resolve().parent
    newest = count = 0
    for path in package.rglob("*"):
        if path.suffix in (".py", ".yaml", ".json"):
            newest = max(newest, path.stat().st_mtime_ns)
            count += 1
    return newest, count


def _path(root: Path, profile: str | None) -> Path:
    return root / ".aivp" / "plans" / f"{profile or '_default'}.pickle"


def path_state(root: Path, rel: str) -> tuple[bool, bool]:
    path = root / rel
    return path.exists(), path.is_symlink()


def file_stat(root: Path, rel: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def cache_key(manifest_rel: str, digest: str, profile: str | None) -> tuple[Any, ...]:
    return FORMAT, code_fingerprint(), manifest_rel, digest, profile


def load(root: Path, key: tuple[Any, ...], profile: str | None) -> CachedPlan | None:
    try:
        with open(_path(root, profile), "rb") as fh:
            cached = pickle.load(fh)
    except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None
    if not isinstance(cached, CachedPlan) or cached.key != key:
        return None
    if any(path_state(root, rel) != seen for rel, seen in cached.paths.items()):
        return None
    if any(file_stat(root, rel) != seen for rel, seen in cached.files.items()):
        return None
    return cached


def save(root: Path, cached: CachedPlan, profile: str | None) -> None:
    with contextlib.suppress(OSError):
        atomic_write_bytes(_path(root, profile), pickle.dumps(cached, protocol=pickle.HIGHEST_PROTOCOL),
                           durable=False)
