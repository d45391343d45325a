"""Atomic writes and copies: the old file or the new one, never a part, and no temp left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aivpbuild import fsutil
from aivpbuild.fsutil import atomic_copy, atomic_path, atomic_write_bytes


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("durable", [True, False])
def test_writes_and_copies_replace_the_file_whole(tmp_path: Path, durable: bool) -> None:
    dest = tmp_path / "deep" / "out.bin"  # the folder is made when missing
    atomic_write_bytes(dest, b"old", durable=durable)
    atomic_write_bytes(dest, b"new" * 1000, durable=durable)
    assert dest.read_bytes() == b"new" * 1000
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 << 20))
    copy = tmp_path / "copy.bin"
    atomic_copy(source, copy, mode=0o640, durable=durable)
    assert copy.read_bytes() == source.read_bytes() and copy.stat().st_mode & 0o777 == 0o640
    assert leftovers(tmp_path) == [] and leftovers(dest.parent) == []


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "page.html"
    atomic_write_bytes(dest, b"old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "missing", dest)
    assert dest.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_a_temp_name_left_by_a_killed_process_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "aivp.lock"
    monkeypatch.setattr(fsutil, "_TEMP_IDS", iter(range(3)))
    stale = tmp_path / f".aivp.lock.{os.getpid()}-0.lock.tmp"  # same pid, same number
    stale.write_bytes(b"stale")
    atomic_write_bytes(dest, b"fresh")
    assert dest.read_bytes() == b"fresh" and stale.read_bytes() == b"stale"
