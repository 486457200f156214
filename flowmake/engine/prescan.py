"""The stat scan of a snapshot's files (snapshot.py) shared with a forked child.

A scan of 20,000 files takes as long as the imports and the loading a run
does before it needs the answer; os.stat releases the GIL but the Python
around each call does not, so the scan goes to another process, on the
other CPU: the child scans from the first file on and reports after each
chunk through a pipe, and this process, once it needs the answer, scans
from the last file back until the two meet. The no-op path starts one as
soon as it holds the project lock, its child reading the snapshot for
itself while the run reads it and gets ready (fastpath.py); when a file
changed, the run that follows plans the cone below the changes from it
(proof.py).
"""

from __future__ import annotations

import os

from ..records import TYPE_CHECKING
from .snapshot import Files, changed_files, path_in, read, stat_key

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Callable, Optional, Set, Tuple

    from .snapshot import Snapshot


def _in_child(work: Callable[[], int]) -> Optional[int]:
    """Fork a child that runs `work` and exits with its result, skipping the
    parent's cleanup; its pid, or None if there is no fork to be had."""
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:
        status = 2
        try:
            # Ctrl-C ends it quietly, with the run: KeyboardInterrupt goes no
            # further than this `finally` (no import of signal, ~1.5 ms with enum).
            status = work()
        finally:
            os._exit(status)
    return pid


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use, in a container too
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Prescan:
    """`changed_files` of a snapshot's files, computed by a forked child while this process goes on.

    The answer is used only for the very records scanned: a run in between
    rewrites or removes the snapshot.
    """

    def __init__(self, files: Optional[Files], pid: int, fd: int) -> None:
        self.files: Files = files if files is not None else Files([], [], [])
        self._pid: Optional[int] = pid
        self._fd = fd
        self._zombie = 0  # a child ended by stop(), which close() waits for
        self._reaped = True
        self._reports = _Reports(fd)
        self._found: Set[str] = set()  # the changed files found so far, by either process
        self._low = len(self.files.paths)  # this process has scanned low..end
        self._ended = False  # the child's pipe is closed: it has reported all it will
        # The snapshot these files came from, with the stat of its file then,
        # so the run need not read it again while that file is unchanged.
        self.snapshot: Optional[Snapshot] = None
        self.stamp: Optional[Tuple[int, int, int, int]] = None

    def scanning(self, files: Files) -> None:
        """The files the child of start_scan reads for itself, as this process read them."""
        self.files, self._low = files, len(files.paths)

    def snapshot_if_current(self, state_dir: str | Path) -> Optional[Snapshot]:
        """The snapshot the no-op path read, if its file is still the one it read."""
        if self.stamp is None or self.stamp != stat_key(path_in(state_dir)):
            return None
        return self.snapshot

    def unchanged(self, root_fd: int) -> bool:
        """Whether every file still has its recorded stat key; False as soon as one is known changed.

        The child is left running when one changed: its scan is handed over
        to the run that follows (`changed`). Once it is True, `stop` it.
        """
        self._advance(root_fd, until_changed=True)
        return not self._found

    def changed(self, files: Files, root_fd: int) -> Optional[Set[str]]:
        """The changed files among `files` (relative to `root_fd`), if those are the ones scanned."""
        if self._pid is None or (files is not self.files and files != self.files):
            self.close()
            return None
        self._advance(root_fd, until_changed=False)
        self.close()
        return set(self._found)

    def _advance(self, root_fd: int, *, until_changed: bool) -> None:
        """Scan back from the last file not yet scanned, taking the child's reports
        after each chunk, until the two scans meet (or, `until_changed`, a change is known)."""
        files, reports, found = self.files, self._reports, self._found
        os.set_blocking(self._fd, False)
        self._ended = self._ended or reports.take(found)
        while self._low > reports.done and not self._ended and not (until_changed and found):
            start = max(reports.done, self._low - PRESCAN_CHUNK)
            found |= changed_files(files.part(start, self._low), root_fd)
            self._low = start
            self._ended = reports.take(found)
        if self._low > reports.done and not (until_changed and found):  # the child failed
            found |= changed_files(files.part(reports.done, self._low), root_fd)
            self._low = reports.done

    def stop(self) -> None:
        """End the child now, its answer no longer needed; `close` waits for it. Safe to call again."""
        if self._pid is not None:
            pid, self._pid = self._pid, None
            os.close(self._fd)
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            self._reaped, self._zombie = False, pid

    def close(self) -> None:
        """End the child (done, or its answer no longer needed) and wait for it; safe to call again."""
        self.stop()
        if not self._reaped:
            self._reaped = True
            os.waitpid(self._zombie, 0)


class _Reports:
    """The prescan child's reports as they arrive: after each chunk, a line "DONE:SIZE"
    (files 0..DONE-1 scanned) and SIZE bytes of the chunk's changed files, NUL-separated."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = b""
        self.done = 0  # files 0..done-1 are reported

    def take(self, changed: Set[str]) -> bool:
        """Add what has arrived to `changed`; True once the child has ended."""
        ended = False
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                ended = True
                break
            self._pending += data
        pending = self._pending
        while True:
            end = pending.find(b"\n")
            if end < 0:
                break
            done, size = (int(n) for n in pending[:end].split(b":"))
            if len(pending) < end + 1 + size:
                break
            if size:
                changed.update(pending[end + 1:end + 1 + size].decode("utf-8", "surrogateescape").split("\0"))
            self.done = done
            pending = pending[end + 1 + size:]
        self._pending = pending
        return ended


# Below this many files a scan costs a few ms, no more than the fork that would overlap it.
PRESCAN_MIN_FILES = 2000
PRESCAN_CHUNK = 500  # files between two reports of the child, and per step of the run's own scan


def start_prescan(files: Files, root: str) -> Optional[Prescan]:
    """Fork a child that scans `files` and reports the changed ones to a pipe; None if
    it cannot, or if there are too few files to be worth a process."""
    if len(files.paths) < PRESCAN_MIN_FILES:
        return None
    return _start(lambda: files, root, files)


# The size of a snapshot file from which the no-op path's child reads it itself (~2,000 files).
SCAN_MIN_BYTES = 100_000


def start_scan(state_dir: str, root: str, stamp: Tuple[int, int, int, int]) -> Optional[Prescan]:
    """A prescan of the snapshot in `state_dir` (its file's stat key: `stamp`) that the child
    reads itself while this process does (`scanning`), so that neither pays a copy of each
    page of the other's it writes to; the child scans nothing if the file is another."""

    def files_in_child() -> Files:
        snap = read(state_dir) if stat_key(path_in(state_dir)) == stamp else None
        return snap.files if snap is not None and stat_key(path_in(state_dir)) == stamp else Files([], [], [])

    return _start(files_in_child, root, None)


def _start(files_in_child: Callable[[], Files], root: str, files: Optional[Files]) -> Optional[Prescan]:
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None

    def report() -> int:
        os.close(read_fd)
        scanned = files_in_child()
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        total = len(scanned.paths)
        for start in range(0, total, PRESCAN_CHUNK):
            stop = min(start + PRESCAN_CHUNK, total)
            found = "\0".join(changed_files(scanned.part(start, stop), root_fd))
            payload = found.encode("utf-8", "surrogateescape")
            view = memoryview(f"{stop}:{len(payload)}\n".encode() + payload)
            while view:
                view = view[os.write(write_fd, view):]
        return 0

    pid = _in_child(report)
    os.close(write_fd)
    if pid is None:
        os.close(read_fd)
        return None
    return Prescan(files, pid, read_fd)
