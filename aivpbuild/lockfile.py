"""``aivp.lock``: per target, its key, output digest and how it was made (committed to git).

The file is YAML, sorted and one field per line so diffs are readable, and it is rewritten
atomically (temp file, fsync, rename) so a crash leaves the old or the new version, never a
mix. Only JSON-style scalars are written, so any YAML reader (and `git diff`) handles it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aivpbuild.errors import ManifestError
from aivpbuild.fsutil import atomic_write_text

LOCK_NAME = "aivp.lock"
_HEADER = "# aivp.lock: written by aivpbuild after every finished target. Commit it; do not edit.\n"


class LockFile:
    """The lock's entries, keyed by target id (``clip:shot-01``)."""

    def __init__(self, path: Path, entries: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = entries or {}
        self._written: str | None = None
        self._pending = False
        self._last_write_at = 0.0
        self._last_write_cost = 0.0
        self._blocks: dict[str, str] = {}  # target -> its rendered lines, until set() again

    @classmethod
    def load(cls, path: Path, memo: Path | None = None) -> LockFile:
        """Read the lock; ``memo`` is a local pickle of the parsed entries, reused while the
        lock file's size, mtime and inode are unchanged (large projects parse it once)."""
        try:
            text = path.read_text("utf-8")
            st = path.stat()
        except FileNotFoundError:
            return cls(path, {})
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        entries = _load_memo(memo, stamp) if memo is not None else None
        if entries is None:
            entries = _parse_own_format(text)
            if entries is not None and memo is not None:
                _save_memo(memo, stamp, entries)
        if entries is not None:
            lock = cls(path, entries)
            lock._written = text
            return lock
        import yaml  # written or merged by hand: read it as the YAML it is

        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise ManifestError(
                f"{path}: cannot parse the lock file ({exc})",
                hint="restore it from git (`git checkout aivp.lock`) or delete it to rebuild from the cache",
            ) from None
        targets = (data or {}).get("targets") or {}
        if not isinstance(targets, dict):
            raise ManifestError(f"{path}: `targets` must be a mapping", hint="restore it from git")
        lock = cls(path, {str(k): dict(v or {}) for k, v in targets.items()})
        lock._written = text
        return lock

    def get(self, target: str) -> dict[str, Any] | None:
        return self.entries.get(target)

    def set(self, target: str, entry: dict[str, Any]) -> None:
        self.entries[target] = entry
        self._blocks.pop(target, None)

    def drop(self, target: str) -> None:
        self.entries.pop(target, None)
        self._blocks.pop(target, None)

    def render(self) -> str:
        lines = [_HEADER, "version: 1\n", "targets:\n" if self.entries else "targets: {}\n"]
        for target in sorted(self.entries):
            block = self._blocks.get(target)
            if block is None:
                block = self._blocks[target] = _render_entry(target, self.entries[target])
            lines.append(block)
        return "".join(lines)

    def save(self, *, throttle: bool = False) -> bool:
        """Write the lock if its content changed; returns whether it wrote.

        With ``throttle`` a write is skipped while the time since the last one is under ten
        times what that write took: small locks are written after every target, a lock of
        thousands of targets at most every few hundred milliseconds (the cache's action
        records keep every finished target durable in between). Only changed entries are
        rendered again.
        """
        now = time.monotonic()
        if throttle and now - self._last_write_at < 10 * self._last_write_cost:
            self._pending = True
            return False
        text = self.render()
        if text == self._written:
            self._pending = False
            return False
        atomic_write_text(self.path, text)
        self._written, self._pending = text, False
        self._last_write_at = time.monotonic()
        self._last_write_cost = self._last_write_at - now
        return True


def lock_entry(*, key: str | None, output: str, digest: str | None, size: int,
               meta: Mapping[str, Any], built_at: str, **extra: Any) -> dict[str, Any]:
    """One target's lock entry: key, output and digest, and how it was made (``meta``)."""
    return {
        "key": key, "output": output, "digest": digest, "size": size,
        "provider": meta.get("provider"), "model": meta.get("model"),
        "request_id": meta.get("request_id"), "seed": meta.get("seed"),
        "cost_usd": float(meta.get("cost_usd") or 0.0), "built_at": meta.get("built_at") or built_at,
        **extra,
    }


def _render_entry(target: str, entry: dict[str, Any]) -> str:
    return f"  {json.dumps(target)}:\n" + "".join(
        f"    {name}: {_scalar(value)}\n" for name, value in sorted(entry.items())
    )


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _parse_own_format(text: str) -> dict[str, dict[str, Any]] | None:
    """Fast path for the layout :meth:`LockFile.render` writes (JSON scalars, fixed indents);
    None when the text is laid out any other way."""
    lines = text.splitlines()
    if len(lines) < 3 or lines[0] != _HEADER.rstrip("\n") or lines[1] != "version: 1":
        return None
    if lines[2] == "targets: {}":
        return {} if len(lines) == 3 else None
    if lines[2] != "targets:":
        return None
    entries: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    try:
        for line in lines[3:]:
            if line.startswith("    ") and current is not None:
                name, _, value = line[4:].partition(": ")
                current[name] = json.loads(value)
            elif line.startswith('  "') and line.endswith(":"):
                current = entries.setdefault(json.loads(line[2:-1]), {})
            else:
                return None
    except ValueError:
        return None
    return entries


def _load_memo(memo: Path, stamp: tuple[int, int, int]) -> dict[str, dict[str, Any]] | None:
    import pickle

    try:
        with open(memo, "rb") as fh:
            saved_stamp, entries = pickle.load(fh)  # our own local state file
    except (OSError, ValueError, EOFError, pickle.PickleError):
        return None
    return entries if saved_stamp == stamp else None


def _save_memo(memo: Path, stamp: tuple[int, int, int], entries: dict[str, dict[str, Any]]) -> None:
    import contextlib
    import pickle

    from aivpbuild.fsutil import atomic_write_bytes

    with contextlib.suppress(OSError):
        atomic_write_bytes(memo, pickle.dumps((stamp, entries), protocol=pickle.HIGHEST_PROTOCOL),
                           durable=False)
