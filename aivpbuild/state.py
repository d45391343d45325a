"""Local state in ``.aivp/state.db`` (SQLite, WAL): stat cache, job journal, spend ledger.

* ``stat_cache``: (path, inode, mtime_ns, size) → sha256, so an unchanged file is never
  re-hashed and a no-op run costs one ``stat`` per file.
* ``jobs``: the journal of paid remote jobs (intent before submit, request id after).
* ``spend``: what each paid job was estimated to cost and what it did cost.
* ``uploads``: provider upload URLs per file digest, so a file is uploaded once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aivpbuild.fsutil import sha256_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY, inode INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL, digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL, target TEXT NOT NULL, provider TEXT NOT NULL, endpoint TEXT NOT NULL,
    input_digest TEXT NOT NULL, request_id TEXT, handle TEXT,
    state TEXT NOT NULL,            -- intent | submitted | completed | failed | cancelled | fetched
    estimate_usd REAL, error TEXT,
    material TEXT,                  -- the key material, so an orphaned result can be cached
    created_at REAL NOT NULL, submitted_at REAL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(key);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL, key TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    request_id TEXT, estimate_usd REAL, actual_usd REAL,
    outcome TEXT NOT NULL,          -- succeeded | failed | cancelled
    billed INTEGER NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    digest TEXT NOT NULL,           -- the reviewed take's output digest
    target TEXT NOT NULL, key TEXT, passed INTEGER NOT NULL, result TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (digest, target)
);
CREATE TABLE IF NOT EXISTS uploads (
    provider TEXT NOT NULL, digest TEXT NOT NULL, url TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (provider, digest)
);
"""

OPEN_JOB_STATES = ("intent", "submitted", "completed")
_RACY_NS = 20_000_000


@dataclass(frozen=True)
class JobRecord:
    id: int
    key: str
    target: str
    provider: str
    endpoint: str
    input_digest: str
    request_id: str | None
    handle: dict[str, Any] | None
    state: str
    estimate_usd: float | None
    error: str | None
    material: dict[str, Any] | None
    created_at: float
    submitted_at: float | None
    updated_at: float


class StateDB:
    """The project's SQLite state. One connection per process, used from one thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self._stats: dict[str, tuple[int, int, int, str]] | None = None
        self._pending_stats: dict[str, tuple[int, int, int, str]] = {}

    def close(self) -> None:
        self.flush()
        self.conn.close()

    # ------------------------------------------------------------------ stat cache
    def digest(self, root: Path, rel: str) -> str:
        """sha256 of ``root/rel``, re-hashed only if its inode, mtime or size changed."""
        if self._stats is None:
            self._stats = {
                row[0]: (row[1], row[2], row[3], row[4])
                for row in self.conn.execute("SELECT path, inode, mtime_ns, size, digest FROM stat_cache")
            }
        st = os.stat(os.path.join(root, rel))  # str paths: pathlib costs more than the stat
        cached = self._stats.get(rel)
        if cached and cached[:3] == (st.st_ino, st.st_mtime_ns, st.st_size):
            return cached[3]
        digest = sha256_file(root / rel)
        # A file modified within the timestamp granularity could change again unseen
        # (the "racy" case): only cache digests of files that have been still for a moment.
        if time.time_ns() - st.st_mtime_ns > _RACY_NS:
            entry = (st.st_ino, st.st_mtime_ns, st.st_size, digest)
            self._stats[rel] = entry
            self._pending_stats[rel] = entry
        return digest

    def remember_digest(self, root: Path, rel: str, digest: str) -> None:
        """Record a digest we already know (a file we just wrote), saving a re-hash later."""
        st = os.stat(root / rel)
        entry = (st.st_ino, st.st_mtime_ns, st.st_size, digest)
        if self._stats is not None:
            self._stats[rel] = entry
        self._pending_stats[rel] = entry

    def flush(self) -> None:
        if not self._pending_stats:
            return
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO stat_cache(path, inode, mtime_ns, size, digest) "
                "VALUES (?, ?, ?, ?, ?)",
                [(p, *v) for p, v in self._pending_stats.items()],
            )
        self._pending_stats.clear()

    # ------------------------------------------------------------------ transactions
    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    # ------------------------------------------------------------------ job journal
    def journal_intent(
        self, *, key: str, target: str, provider: str, endpoint: str, input_digest: str,
        estimate_usd: float | None, material: dict[str, Any] | None = None,
    ) -> int:
        """Record, durably, that we are about to submit a paid job. Returns the journal id."""
        now = time.time()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO jobs(key, target, provider, endpoint, input_digest, state, "
                "estimate_usd, material, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'intent', ?, ?, ?, ?)",
                (key, target, provider, endpoint, input_digest, estimate_usd,
                 json.dumps(material, sort_keys=True) if material is not None else None, now, now),
            )
        return int(cur.lastrowid or 0)

    def journal_submitted(self, job_id: int, request_id: str, handle: dict[str, Any]) -> None:
        now = time.time()
        with self.transaction():
            self.conn.execute(
                "UPDATE jobs SET state='submitted', request_id=?, handle=?, submitted_at=?, "
                "updated_at=? WHERE id=?",
                (request_id, json.dumps(handle, sort_keys=True), now, now, job_id),
            )

    def journal_state(self, job_id: int, state: str, error: str | None = None) -> None:
        from aivpbuild.secrets import redact  # provider error text may echo anything back

        with self.transaction():
            self.conn.execute(
                "UPDATE jobs SET state=?, error=?, updated_at=? WHERE id=?",
                (state, redact(error) if error else None, time.time(), job_id),
            )

    def open_jobs(self, key: str | None = None) -> list[JobRecord]:
        """Journaled jobs not yet fetched, failed or cancelled (oldest first); only those of
        ``key`` when given."""
        by_key, args = ("key=? AND ", (key,)) if key is not None else ("", ())
        states = ",".join("?" * len(OPEN_JOB_STATES))
        rows = self.conn.execute(
            f"SELECT * FROM jobs WHERE {by_key}state IN ({states}) ORDER BY id", (*args, *OPEN_JOB_STATES)
        )
        return [_job(row) for row in rows]

    def jobs(self, limit: int = 200) -> list[JobRecord]:
        rows = self.conn.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [_job(row) for row in rows]

    # ------------------------------------------------------------------ spend ledger
    def record_spend(
        self, *, target: str, key: str, provider: str, model: str, request_id: str | None,
        estimate_usd: float | None, actual_usd: float | None, outcome: str, billed: bool,
    ) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO spend(target, key, provider, model, request_id, estimate_usd, "
                "actual_usd, outcome, billed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (target, key, provider, model, request_id, estimate_usd, actual_usd, outcome,
                 int(billed), time.time()),
            )

    def spend_rows(self) -> list[sqlite3.Row]:
        self.conn.row_factory = sqlite3.Row
        try:
            return list(self.conn.execute("SELECT * FROM spend ORDER BY id"))
        finally:
            self.conn.row_factory = None

    # ------------------------------------------------------------------ reviews
    def record_review(self, *, target: str, key: str | None, digest: str, result: dict[str, Any]) -> None:
        """Keep a take's review (by output digest), replacing an earlier review of the same take."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO reviews(digest, target, key, passed, result, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (digest, target, key, int(bool(result.get("passed"))), json.dumps(result, sort_keys=True),
                 time.time()),
            )

    def review_of(self, target: str, digest: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT result FROM reviews WHERE target=? AND digest=?",
                                (target, digest)).fetchone()
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------------ uploads
    def upload_url(self, provider: str, digest: str) -> str | None:
        row = self.conn.execute(
            "SELECT url FROM uploads WHERE provider=? AND digest=?", (provider, digest)
        ).fetchone()
        return row[0] if row else None

    def remember_upload(self, provider: str, digest: str, url: str) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO uploads(provider, digest, url, created_at) VALUES (?, ?, ?, ?)",
                (provider, digest, url, time.time()),
            )


class _Transaction:
    """``with db.transaction():`` — BEGIN IMMEDIATE … COMMIT, rolled back on error. Inside
    another transaction it joins that one, so several records can be committed as one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.outermost = False

    def __enter__(self) -> sqlite3.Connection:
        self.outermost = not self.conn.in_transaction
        if self.outermost:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.outermost:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _job(row: tuple[Any, ...]) -> JobRecord:
    (id_, key, target, provider, endpoint, input_digest, request_id, handle, state,
     estimate, error, material, created, submitted, updated) = row
    return JobRecord(
        id=id_, key=key, target=target, provider=provider, endpoint=endpoint,
        input_digest=input_digest, request_id=request_id,
        handle=json.loads(handle) if handle else None, state=state, estimate_usd=estimate,
        error=error, material=json.loads(material) if material else None, created_at=created,
        submitted_at=submitted, updated_at=updated,
    )
