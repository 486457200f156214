"""Cache operations with a deadline: a slow cache delays a run by seconds, never hangs it.

Every operation on the cache runs on one daemon thread and the run waits for
it at most its deadline. An operation that raises or runs late turns the
cache off for the rest of the run (the caller warns once); a late one is
left behind on its thread, which, being a daemon, never holds the process
at exit. The thread only ever writes temporary names in the project: what
is renamed into place is renamed by the caller, after the answer came in time.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, List, Optional


class CacheTimeout(Exception):
    pass


class _Call:
    __slots__ = ("fn", "args", "done", "result", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None


class Guard:
    def __init__(self) -> None:
        self._calls: "queue.SimpleQueue[Optional[_Call]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None

    def call(self, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on the cache's thread; its exception re-raised here; CacheTimeout after `timeout` seconds."""
        return self.wait(self.submit(fn, *args), timeout)

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Call:
        """Queue fn(*args) on the cache's thread, after what is queued already; `wait` for it later (or never)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="flowmake-cache", daemon=True)
            self._thread.start()
        call = _Call(fn, args)
        self._calls.put(call)
        return call

    @staticmethod
    def wait(call: _Call, timeout: float) -> Any:
        if not call.done.wait(timeout):
            raise CacheTimeout(f"no answer within {timeout:g}s")
        if call.error is not None:
            raise call.error
        return call.result

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            try:
                call.result = call.fn(*call.args)
            except BaseException as exc:  # handed to the waiting caller, which decides
                call.error = exc
            call.done.set()

    def close(self) -> None:
        if self._thread is not None:
            self._calls.put(None)


class Prefetch:
    """fn(*args) on a daemon thread of its own, which nobody waits for: `result()` is its value once it is done.

    For what only saves time when it comes (the listing of a cache's entries):
    until then, or if it fails or never ends, the caller goes on without it.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._call = _Call(fn, args)
        threading.Thread(target=self._run, name="flowmake-cache-prefetch", daemon=True).start()

    def _run(self) -> None:
        call = self._call
        try:
            call.result = call.fn(*call.args)
        except Exception as exc:  # a listing that fails only costs the lookups it would have saved
            call.error = exc
        call.done.set()

    def result(self, wait: float = 0.0) -> Any:
        """Its value if it is done (within `wait` seconds), else None."""
        call = self._call
        if wait > 0:
            call.done.wait(wait)
        return call.result if call.done.is_set() and call.error is None else None


def deadline_for(base: float, size: int) -> float:
    """The time a transfer of `size` bytes may take: the base timeout, plus a second per MB (1 MB/s at least)."""
    return base + size / 1_000_000


__all__: "List[str]" = ["Guard", "CacheTimeout", "Prefetch", "deadline_for"]
