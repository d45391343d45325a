"""One build at a time per project: an exclusive ``flock`` on ``.aivp/build.pid``.

The kernel drops the lock when its holder dies (even by SIGKILL), so a stale lock from a
dead process is simply taken over; the file holds the holder's pid for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from aivpbuild.errors import LockedError


class BuildLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(
                f"another aivpbuild (pid {holder}) is building in this project",
                hint="wait for it to finish, or stop it; two builds at once could pay twice",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
