"""Takes: every generation of a clip, kept in the cache; list, pick, reject.

A clip's takes are the takes recorded under its current key (``.aivp/cache/actions``): the
same manifest entry generated several times, each with its own seed. The current take is the
one in ``video/clips`` and in ``aivp.lock`` (with ``take: N``); a rejected take is marked in
both, so the next build makes a new take with a new seed, while the old one stays
restorable by ``pick``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aivpbuild.cache import Action, Cache
from aivpbuild.errors import ConfigError
from aivpbuild.lockfile import LockFile
from aivpbuild.state import StateDB


@dataclass
class TakeInfo:
    """One take of a clip, as `aivpbuild takes` shows it."""

    number: int
    digest: str
    path: Path
    seed: int | None
    model: str | None
    cost_usd: float
    built_at: str
    current: bool
    rejected: str | None
    review: str | None  # "passed", "failed" or None (not reviewed)

    def to_json(self) -> dict[str, Any]:
        return {"take": self.number, "digest": self.digest, "seed": self.seed, "model": self.model,
                "cost_usd": self.cost_usd, "built_at": self.built_at, "current": self.current,
                "rejected": self.rejected, "review": self.review, "path": str(self.path)}


def new_seed(key: str, number: int) -> int:
    """The seed of take ``number`` of a key: fresh for every take, yet reproducible."""
    return int(hashlib.sha256(f"{key}:take{number}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def list_takes(cache: Cache, state: StateDB, lock: LockFile, tid: str, key: str) -> list[TakeInfo]:
    """The takes of target ``tid`` under ``key``, oldest first."""
    action = cache.action(key)
    if action is None:
        return []
    entry = lock.get(tid) or {}
    current = _current_index(action, entry.get("digest") if entry.get("key") == key else None)
    infos = []
    for index, take in enumerate(action.takes):
        meta = take.metadata
        review = state.review_of(tid, take.digest)
        infos.append(TakeInfo(
            number=index + 1, digest=take.digest, path=cache.object_path(take.digest),
            seed=meta.get("seed"), model=meta.get("model"),
            cost_usd=float(meta.get("cost_usd") or 0.0), built_at=str(meta.get("built_at") or take.created_at),
            current=index == current,
            rejected=take.rejected,
            review=None if review is None else ("passed" if review.get("passed") else "failed"),
        ))
    return infos


def _current_index(action: Action, digest: str | None) -> int:
    """Which take the lock's digest is (the action's current one when several share bytes)."""
    if digest is not None and action.take.digest == digest:
        return action.current
    return next((i for i, t in enumerate(action.takes) if t.digest == digest), -1)


def reject_current(cache: Cache, lock: LockFile, tid: str, key: str, reason: str) -> int:
    """Mark the current take of ``tid`` rejected (in the cache and the lock); its number."""
    action = cache.action(key)
    entry = lock.get(tid)
    if action is None or entry is None or entry.get("key") != key:
        raise ConfigError(f"{tid.split(':', 1)[-1]} has no current take to reject",
                          hint="build it first (`aivpbuild status` shows why it is not built)")
    index = _current_index(action, entry.get("digest"))
    if index < 0:
        raise ConfigError(f"{tid}: the lock's output is not among the cached takes",
                          hint="rebuild it: `aivpbuild -B " + tid.split(":", 1)[-1] + "`")
    action.takes[index].rejected = reason
    cache.save(action)
    lock.set(tid, {**entry, "take": index + 1, "rejected": reason})
    return index + 1


def choose(cache: Cache, key: str, number: int, tid: str) -> tuple[Action, int]:
    """The action of ``key`` with take ``number`` made current (not saved yet)."""
    action = cache.action(key)
    count = len(action.takes) if action else 0
    if action is None or not 1 <= number <= count:
        name = tid.split(":", 1)[-1]
        raise ConfigError(f"{name} has no take {number} (it has {count})",
                          hint=f"see `aivpbuild takes {name}`")
    take = action.takes[number - 1]
    if not cache.has_object(take.digest):
        raise ConfigError(f"take {number} of {tid.split(':', 1)[-1]} is no longer in the cache",
                          hint="it was removed (clean --cache); pick another take")
    take.rejected = None  # picking a take is taking it back
    action.current = number - 1
    return action, number
