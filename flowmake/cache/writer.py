"""A run's stores, written on one thread of their own, in batches, while the run goes on.

A store per task handed to a thread one at a time cost a run of trivial
tasks a quarter of its CPU (a wake-up, a hand-off of the interpreter lock
and a reply per task, for a few file writes): here the run only appends to
a queue. The thread wakes by itself every FLUSH_EVERY seconds (and at the
end of the run), or when the run has queued a megabyte of files to upload
(big files go up while the run goes on); it prepares each queued entry
(uploads its blobs, reads its small files: transfer.prepare) and writes
what it prepared together (a pack of many entries: packs.py). The run
waits for the rest at its end (`drain`), with a deadline; an error stops
the writer and is reported there or at the next store, never raised on
the run's side.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

# The run wakes the thread only when this many bytes to upload are queued (big files are uploaded while
# the run goes on), or for a repair; else the thread wakes by itself every FLUSH_EVERY seconds, and at
# the end. A wake-up costs both threads a hand-off of the interpreter lock, and entries prepared early
# gain nothing: they are written together.
BATCH_BYTES = 1 << 20
# Seconds between two writes of prepared entries: what a run killed half-way loses of its stores
# (its outputs are stored again by the run after it), and few enough packs for a long run.
FLUSH_EVERY = 10.0


class Writer:
    def __init__(self, prepare: Callable[[Any], Optional[Any]], flush: Callable[[List[Any]], int]) -> None:
        self._prepare = prepare
        self._flush = flush
        self._todo: Deque[Tuple[Any, int, bool]] = collections.deque()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._woken_bytes = 0
        self._closing = False
        self.cancelled = False  # set by the run when it gives up waiting: the thread stops at its next store
        self.error: Optional[BaseException] = None
        self.stored = 0  # written by the thread only
        self._queued_bytes = 0  # by the run only
        self._done_bytes = 0  # by the thread only

    def put(self, item: Any, size: int, *, alone: bool = False) -> None:
        """Queue a store; `alone`: written at once and by itself (a repair: an entry file of its own)."""
        self._todo.append((item, size, alone))  # a deque's append is atomic: no lock on the run's side
        self._queued_bytes += size
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="flowmake-cache-writer", daemon=True)
            self._thread.start()
        if alone or self.bytes_left - self._woken_bytes >= BATCH_BYTES:
            self._woken_bytes = self.bytes_left
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._todo)

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def bytes_left(self) -> int:
        return self._queued_bytes - self._done_bytes

    def _serve(self) -> None:
        batch: List[Any] = []
        flushed = time.monotonic()
        try:
            while True:
                # Stores queued without a wake-up are prepared and written at the next flush all the same.
                timeout = max(0.0, FLUSH_EVERY - (time.monotonic() - flushed)) if self._todo or batch else None
                self._wake.wait(timeout)
                self._wake.clear()
                while self._todo and not self.cancelled:
                    item, size, alone = self._todo.popleft()
                    prepared = self._prepare(item)
                    if prepared is not None:
                        if alone:
                            self.stored += self._flush([prepared])
                        else:
                            batch.append(prepared)
                    self._done_bytes += size
                if self.cancelled:
                    return
                if batch and (self._closing or time.monotonic() - flushed >= FLUSH_EVERY):
                    self.stored += self._flush(batch)
                    batch, flushed = [], time.monotonic()
                if self._closing:
                    return
        except BaseException as exc:  # reported by the run (drain, or its next store)
            self.error = exc
            self._todo.clear()

    def drain(self, timeout: float) -> bool:
        """Write what is queued and stop; False when that took longer than `timeout` (the thread is left behind)."""
        if self._thread is None:
            return True
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.cancelled = True
            return False
        return True


__all__: "List[str]" = ["Writer", "BATCH_BYTES", "FLUSH_EVERY"]
