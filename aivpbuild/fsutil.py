"""Small file-system helpers: atomic writes, content hashing and project-path checks."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: Number of files hashed in this process (tests use it to prove a no-op run hashes nothing).
HASH_CALLS = 0

_CHUNK = 1 << 20
#: Temp-file numbers within this process (with its pid: names no other writer uses).
_TEMP_IDS = itertools.count()


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


def _create_beside(dest: Path, suffix: str | None) -> tuple[int, Path]:
    """Create a new, empty temp file beside ``dest`` (its folder made when missing); returns
    its open descriptor and path. Permissions are the usual ones (0666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{next(_TEMP_IDS)}{suffix or dest.suffix + '.tmp'}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # left by a killed process that had the same pid
            continue
        except FileNotFoundError:
            dest.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _replacing(dest: Path, suffix: str | None, durable: bool) -> Iterator[tuple[int, Path]]:
    """A new temp file beside ``dest``, open as a descriptor; on success fsync-ed (when
    ``durable``), closed and renamed over ``dest``; on any error closed and removed."""
    fd, tmp = _create_beside(dest, suffix)
    is_open = True
    try:
        yield fd, tmp
        if durable:
            os.fsync(fd)  # the file's data, whichever descriptor wrote it
        is_open = False
        os.close(fd)
        os.replace(tmp, dest)
        if durable:
            _fsync_dir(dest.parent)
    except BaseException:
        if is_open:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str | None = None, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success fsync it and rename it over ``dest``.

    On any error the temp file is removed and ``dest`` is left untouched. ``durable=False``
    skips the fsyncs, for files made again from the project's state (clip logs, the plan, the
    review page and its thumbnails): still never seen half-written, but a power cut may lose
    the newest version. Records of paid results, the lock and user files stay durable.
    """
    with _replacing(dest, suffix, durable) as (_fd, tmp):
        yield tmp


def atomic_write_bytes(dest: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``dest`` so a reader sees the old or the new file, never a part."""
    with _replacing(dest, None, durable) as (fd, _tmp), open(fd, "wb", closefd=False) as fh:
        fh.write(data)


def _copy_into(fd: int, source: BinaryIO) -> None:
    """Copy an open file's bytes into ``fd``: in the kernel on Linux, else through a buffer."""
    if sys.platform == "linux":
        size, offset = os.fstat(source.fileno()).st_size, 0
        while offset < size:
            sent = os.sendfile(fd, source.fileno(), offset, size - offset)
            if sent == 0:
                break  # the source shrank under us: copy what there is
            offset += sent
        return
    with open(fd, "wb", closefd=False) as out:
        shutil.copyfileobj(source, out, _CHUNK)


def atomic_copy(src: Path, dest: Path, *, mode: int | None = None, durable: bool = True) -> None:
    """Copy ``src`` to ``dest`` atomically (the kernel copies the bytes), with ``mode`` when given."""
    with _replacing(dest, None, durable) as (fd, _tmp), open(src, "rb") as source:
        _copy_into(fd, source)
        if mode is not None:
            os.fchmod(fd, mode)


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
