"""Small file-system helpers: atomic writes, content hashing and project-path checks."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Number of files hashed in this process (tests use it to prove a no-op run hashes nothing).
HASH_CALLS = 0

_CHUNK = 1 << 20
_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    global HASH_CALLS
    HASH_CALLS += 1
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str | None = None, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success fsync it and rename it over ``dest``.

    On any error the temp file is removed and ``dest`` is left untouched. ``durable=False``
    skips the fsyncs, for files made again from the project's state (clip logs, the plan, the
    review page and its thumbnails): still never seen half-written, but a power cut may lose
    the newest version. Records of paid results, the lock and user files stay durable.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=suffix or dest.suffix + ".tmp", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
        if durable:
            _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(dest: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``dest`` so a reader sees the old or the new file, never a part."""
    with atomic_path(dest, durable=durable) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: Path, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"), durable=durable)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_within(root: Path, path: Path) -> bool:
    """Whether ``path`` (resolved, following symlinks) lies inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def clean_relative_path(value: str) -> str | None:
    """Why ``value`` is not a safe project-relative path, or None when it is."""
    if not value.strip():
        return "is empty"
    if value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        return "is absolute; write it relative to the project directory"
    parts = value.replace("\\", "/").split("/")
    if ".." in parts:
        return "contains '..'; paths must stay inside the project directory"
    return None
