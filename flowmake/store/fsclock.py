"""The file system's own clock, read by touching a marker file: the reference
that tells a stat cache entry that can be trusted from a racy one.

A stat cache entry vouches for a file's bytes only if no write after the
hash could have left the stat as it was. A write is stamped with the file
system's clock, which on Linux is the kernel's coarse tick (1-10 ms) or finer,
on FAT 2 s, and on NFS the server's clock. So, as git compares its entries
with the mtime of the index file it writes, flowmake touches
`.flowmake/clock` before it reads a file and takes the marker's new mtime M
as the reference: every later write is stamped at or above M, so a file
whose mtime is below M cannot change without its stat changing. A file
written in the same tick as M stays racy and is read again (`settle`, or
the next run).

The comparison only holds within one clock: for a file on another device
than the marker (or where the marker cannot be written: a read-only
project, no `.flowmake/` yet) the reference falls back to the system clock
less `RACY_WINDOW_NS`, the rule before the marker.
"""

from __future__ import annotations

import os
import time

from ..layout import STATE_DIR
from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from typing import Callable, Optional, Sequence

MARKER_NAME = "clock"
# Coarser than any common file system's timestamp granularity (FAT: 2 s) and
# the kernel's coarse clock tick: the fallback where the marker cannot speak.
RACY_WINDOW_NS = 2_000_000_000
# A touch costs a utime and a stat (~7 us here): at most one a millisecond,
# so a burst of small outputs shares one. An output written after that touch
# stays racy and `settle` reads it again at the end of the run.
_MIN_TOUCH_INTERVAL_NS = 1_000_000
# `wait_past` waits out a coarse kernel tick (1-10 ms) but not FAT's 2 s.
_LONGEST_WAIT_NS = 30_000_000


class FsClock:
    """References from one marker file's mtime, on the marker's device."""

    __slots__ = ("_marker", "_system_ns", "_monotonic_ns", "_device", "_stamp", "_touched_at", "_usable")

    def __init__(self, marker: str, *, system_ns: Callable[[], int] = time.time_ns,
                 monotonic_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._marker = marker
        self._system_ns = system_ns
        self._monotonic_ns = monotonic_ns
        self._device: Optional[int] = None
        self._stamp = 0  # the marker's mtime at the last touch
        self._touched_at: Optional[int] = None  # monotonic, for the rate limit
        self._usable = True

    @classmethod
    def for_project(cls, root: object) -> "FsClock":
        return cls(os.path.join(str(root), STATE_DIR, MARKER_NAME))

    def reference(self, st: os.stat_result) -> int:
        """A stamp below which `st`'s mtime proves the bytes read after this call are the file's.

        Call it before reading the file.
        """
        if self._not_past(st):
            now = self._monotonic_ns()
            if self._touched_at is None or now - self._touched_at >= _MIN_TOUCH_INTERVAL_NS:
                self._touch(now)
                if self._not_past(st):
                    # A write and a touch in one coarse tick share a stamp; a kernel with
                    # multigrain timestamps gives the next touch of a file just
                    # looked at a fine-grained one, past the write.
                    self._touch(now)
        if self._usable and st.st_dev == self._device:
            return self._stamp
        return self._system_ns() - RACY_WINDOW_NS

    def _not_past(self, st: os.stat_result) -> bool:
        """Whether a touch could help: the clock is unread, or not yet past this file on its device."""
        return self._usable and (self._device is None
                                 or (st.st_dev == self._device and st.st_mtime_ns >= self._stamp))

    def wait_past(self, stats: Sequence[os.stat_result], *, longest_ns: int = _LONGEST_WAIT_NS) -> bool:
        """Touch the marker until the file system's clock is past these files' mtimes, for at most `longest_ns`.

        Only the files on the marker's device count (the others are judged by
        the system clock). Whether it got there; on a clock as coarse as FAT's
        it gives up, and the files stay racy for the next run to read.
        """
        start = self._monotonic_ns()
        while True:
            self._touch(self._monotonic_ns())
            if not self._usable:
                return False
            latest = max((st.st_mtime_ns for st in stats if st.st_dev == self._device), default=None)
            if latest is None or self._stamp > latest:
                return True
            if self._monotonic_ns() - start >= longest_ns:
                return False
            time.sleep(_MIN_TOUCH_INTERVAL_NS / 1e9)

    def _touch(self, now: int) -> None:
        try:
            try:
                os.utime(self._marker)  # None: the kernel stamps it with the file system's now
            except FileNotFoundError:
                if not os.path.isdir(os.path.dirname(self._marker)):
                    raise  # no state directory yet (`status` before any run): never make one here
                os.close(os.open(self._marker, os.O_WRONLY | os.O_CREAT, 0o644))
            st = os.stat(self._marker)
        except OSError:
            self._usable = False  # read-only, gone, or not ours: the system clock's rule it is
            return
        self._device, self._stamp, self._touched_at = st.st_dev, st.st_mtime_ns, now
