"""One run at a time per project: an advisory lock on `.flowmake/lock`.

flock(2) is released by the kernel when the holder dies, even by SIGKILL,
so a crashed run never leaves a stale lock behind. The holder writes its pid
into the file so that the one turned away can say who holds it.
"""

from __future__ import annotations

import fcntl
import os

from ..errors import LockHeldError
from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Optional


class ProjectLock:
    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._fd: Optional[int] = None

    def acquire(self, *, wait: bool) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise LockHeldError(
                f"another flowmake run ({who}) is running in this project",
                file=self.path,
                hint="wait for it to finish, or pass --wait to queue behind it",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_project(root: Path, *, wait: bool) -> ProjectLock:
    """The project's lock, held; `wait`: queue behind a holder instead of failing."""
    from .state import ensure_state_dir

    lock = ProjectLock(ensure_state_dir(root) / "lock")
    lock.acquire(wait=wait)
    return lock


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
