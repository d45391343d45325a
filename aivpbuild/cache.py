"""The content-addressed cache in ``.aivp/cache``.

``objects/ab/cdef…`` holds every output ever made, stored once under its sha256.
``actions/<key>.json`` maps a target key to its takes (output digest + metadata such as
request id, seed and cost) and the key material, so reverting an edit, switching profile or
checking out an old branch restores outputs for free, and "why stale" can diff materials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivpbuild.fsutil import atomic_copy, atomic_write_text, sha256_file


@dataclass
class Take:
    """One generation of a target."""

    digest: str
    size: int
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Why the take was rejected (``aivpbuild reject``, or a failed review), if it was.
    rejected: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"digest": self.digest, "size": self.size, "created_at": self.created_at,
                "metadata": self.metadata}
        if self.rejected is not None:
            data["rejected"] = self.rejected
        return data


@dataclass
class Action:
    """What a key produced: its takes and which one is current."""

    key: str
    material: dict[str, Any]
    takes: list[Take]
    current: int = 0

    @property
    def take(self) -> Take:
        return self.takes[self.current]

    def usable(self, has_object: Callable[[str], bool]) -> int | None:
        """The take to restore: the current one unless rejected, else the newest take that is
        neither rejected nor missing from the cache; None when there is none."""
        order = [self.current, *reversed(range(len(self.takes)))]
        return next((i for i in order if self.takes[i].rejected is None
                     and has_object(self.takes[i].digest)), None)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "material": self.material, "current": self.current,
                "takes": [t.to_json() for t in self.takes]}


class Cache:
    """Content-addressed objects plus key → action records."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.actions = root / "actions"

    def object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def has_object(self, digest: str) -> bool:
        return self.object_path(digest).is_file()

    def put_file(self, path: Path, digest: str | None = None, *, move: bool = False) -> str:
        """Store a file's bytes under their digest (moved when ``move``); returns the digest."""
        digest = digest or sha256_file(path)
        dest = self.object_path(digest)
        if dest.is_file():
            if move:
                path.unlink()
            return digest
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:
            os.replace(path, dest)
        else:
            atomic_copy(path, dest)
        os.chmod(dest, 0o444)
        return digest

    def restore(self, digest: str, dest: Path) -> None:
        """Copy an object to ``dest`` atomically (a copy, so edits never reach the cache)."""
        atomic_copy(self.object_path(digest), dest, mode=0o644)

    # ------------------------------------------------------------------ actions
    def action(self, key: str) -> Action | None:
        path = self.actions / key[:2] / f"{key}.json"
        try:
            data = json.loads(path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        takes = [Take(t["digest"], t["size"], t["created_at"], t.get("metadata", {}), t.get("rejected"))
                 for t in data.get("takes", [])]
        if not takes:
            return None
        current = min(int(data.get("current", len(takes) - 1)), len(takes) - 1)
        return Action(key=key, material=data.get("material", {}), takes=takes, current=current)

    def restorable(self, key: str) -> Action | None:
        """The action for ``key``, its current take set to the one to restore (see
        :meth:`Action.usable`); None when no take can be restored."""
        action = self.action(key)
        if action is None:
            return None
        usable = action.usable(self.has_object)
        if usable is None:
            return None
        action.current = usable
        return action

    def record(self, key: str, material: Mapping[str, Any], take: Take) -> Action:
        """Add a take to a key's action record and make it current."""
        action = self.action(key) or Action(key=key, material=dict(material), takes=[])
        action.material = dict(material)
        action.takes.append(take)
        action.current = len(action.takes) - 1
        self.save(action)
        return action

    def save(self, action: Action) -> None:
        path = self.actions / action.key[:2] / f"{action.key}.json"
        atomic_write_text(path, json.dumps(action.to_json(), indent=1, sort_keys=True))
