"""Why a target is (or is not) up to date, as reasons rather than a bare bool.

Checks run cheapest first: forced, key vs lock, the output's presence, then its digest
(through the stat cache, so an unchanged file costs one ``stat``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivpbuild.cache import Action, Cache
from aivpbuild.keys import KEY_SCHEMA, explain_change, key_of
from aivpbuild.lockfile import LockFile
from aivpbuild.state import StateDB
from aivpbuild.targets import ClipTarget, Target

UP_TO_DATE = "up to date"
MISSING = "missing"
RESTORABLE = "restorable"
CHANGED = "changed"
MODIFIED = "modified"
FORCED = "forced"
REJECTED = "rejected"
NEEDS_WORK = (MISSING, CHANGED, FORCED, REJECTED)


@dataclass
class TargetStatus:
    """A target's state, the reasons for it, and what making it would cost."""

    target: str
    state: str
    reasons: list[str] = field(default_factory=list)
    key: str | None = None
    material: dict[str, Any] | None = None
    digest: str | None = None          # output digest if known (up to date / restorable)
    action: Action | None = None       # cache record when restorable
    estimate_usd: float | None = 0.0

    @property
    def label(self) -> str:
        return f"{self.state}: {', '.join(self.reasons)}" if self.reasons else self.state

    @property
    def needs_work(self) -> bool:
        return self.state in NEEDS_WORK

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "state": self.state, "reasons": self.reasons,
                "key": self.key, "estimate_usd": self.estimate_usd if self.needs_work else 0.0}


class Evaluator:
    """Computes target keys and states against the lock, the cache and the files."""

    def __init__(self, root: Path, state: StateDB, cache: Cache, lock: LockFile) -> None:
        self.root = root
        self.state = state
        self.cache = cache
        self.lock = lock

    def material(self, target: Target, upstream: Mapping[str, str | None]) -> tuple[str, dict[str, Any]] | None:
        """(key, full key material), or None when an upstream output is not known yet.

        The key is a Merkle hash: the target's precomputed static digest plus the digests of its
        input files and upstream outputs, so a no-op run hashes only a few short strings.
        """
        inputs = {
            role: {"path": rel, "digest": self.state.digest(self.root, rel)}
            for role, rel in (target.inputs.items() if isinstance(target, ClipTarget) else ())
        }
        ups: dict[str, Any] = {}
        for role, dep in target.upstream.items():
            digest = upstream.get(dep)
            if digest is None:
                return None
            ups[role] = {"target": dep, "digest": digest}
        key = key_of({"schema": KEY_SCHEMA, "static": target.static_key or key_of(target.material),
                      "inputs": {r: v["digest"] for r, v in inputs.items()},
                      "upstream": {r: v["digest"] for r, v in ups.items()}})
        return key, {**target.material, "inputs": inputs, "upstream": ups}

    def evaluate(self, target: Target, upstream: Mapping[str, str | None], *,
                 forced: bool = False) -> TargetStatus:
        status = TargetStatus(target=target.id, state=MISSING, estimate_usd=target.estimate_usd)
        computed = self.material(target, upstream)
        entry = self.lock.get(target.id)
        if computed is None:
            if entry is None:
                return status
            waiting = [d.split(":", 1)[1].split("@")[0] for d in target.deps if upstream.get(d) is None]
            status.state = CHANGED
            status.reasons = [f"upstream {', '.join(dict.fromkeys(waiting))} (rebuilding)"]
            return status
        key, material = computed
        status.key, status.material = key, material
        if forced:
            status.state = FORCED
            return status
        if entry and entry.get("key") == key and entry.get("rejected") is not None:
            status.state = REJECTED
            status.reasons = [f"take {entry.get('take', '?')} rejected: {entry['rejected']}"
                              if entry["rejected"] else f"take {entry.get('take', '?')} rejected"]
            return status
        if entry and entry.get("key") == key:
            try:
                digest: str | None = self.state.digest(self.root, target.output)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                digest = None
            if digest is not None:
                status.digest = digest
                status.state = UP_TO_DATE if digest == entry.get("digest") else MODIFIED
                if status.state == MODIFIED:
                    status.reasons = [f"{target.output} was changed outside aivpbuild"]
                return status
            if self.cache.has_object(str(entry.get("digest"))):
                status.state, status.digest = RESTORABLE, str(entry["digest"])
                status.action = self.cache.action(key)
                status.reasons = [f"{target.output} is missing"]
                return status
            status.reasons = [f"{target.output} is missing and not in the cache"]
            return status
        action = self.cache.restorable(key)
        reasons = self._why_changed(entry, material) if entry else []
        if action is not None:
            status.state, status.digest, status.action = RESTORABLE, action.take.digest, action
            status.reasons = reasons
            return status
        if entry:
            status.state, status.reasons = CHANGED, reasons
        return status

    def _why_changed(self, entry: Mapping[str, Any], material: Mapping[str, Any]) -> list[str]:
        previous = self.cache.action(str(entry.get("key")))
        if previous is None:
            return ["key changed (previous build record not in this cache)"]
        return explain_change(previous.material, material)
