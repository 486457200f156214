"""A run's stores, written on one thread of their own, in batches, while the run goes on.

A store per task handed to a thread one at a time cost a run of trivial
tasks a quarter of its CPU (a wake-up, a hand-off of the interpreter lock
and a reply per task, for a few file writes): here the run only appends to
a queue, and the thread is woken when a batch has gathered (or when the
last wake-up is a while ago, so that the stores of slow tasks are not held
back), then writes everything queued. The run waits for the rest at its end
(`drain`), with a deadline; an error stops the writer and is reported there
or at the next store, never raised on the run's side mid-task.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, List, Optional

BATCH = 64  # stores queued before the thread is woken
LATENCY = 0.05  # seconds: a store waits at most about this long for its batch to gather


class Writer:
    def __init__(self, store: Callable[[Any], bool]) -> None:
        self._store = store
        self._todo: Deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._woken = 0.0
        self._closing = False
        self.cancelled = False  # set by the run when it gives up waiting: the thread stops at its next store
        self.error: Optional[BaseException] = None
        self.stored = 0  # written by the thread only
        self._queued_bytes = 0  # by the run only
        self._done_bytes = 0  # by the thread only

    def put(self, item: Any, size: int) -> None:
        self._todo.append((item, size))  # a deque's append is atomic: no lock on the run's side
        self._queued_bytes += size
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="flowmake-cache-writer", daemon=True)
            self._thread.start()
        now = time.monotonic()
        if len(self._todo) >= BATCH or now - self._woken > LATENCY:
            self._woken = now
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
        while True:
            # Stores left by a put that did not wake it are written within LATENCY all the same.
            self._wake.wait(LATENCY if self._todo else None)
            self._wake.clear()
            while self._todo and not self.cancelled:
                item, size = self._todo.popleft()
                try:
                    if self._store(item):
                        self.stored += 1
                    self._done_bytes += size
                except BaseException as exc:  # reported by the run (drain, or its next store)
                    self.error = exc
                    self._todo.clear()
                    return
            if self._closing or self.cancelled:
                return

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


__all__: "List[str]" = ["Writer", "BATCH", "LATENCY"]
