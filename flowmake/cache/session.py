"""What a run holds of the cache: look up a key, restore an entry, store outputs; each in time or not at all.

Faults of one entry (corrupt, truncated, blobs gone) are warnings naming
the entry: the task runs, and storing its outputs repairs the entry. A
cache that fails as a whole (unreachable, credentials refused, too slow) is
one warning, and the run goes on without it.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Tuple

from .entry import CorruptEntry, Entry, entry_path, parse_entry, run_path
from .guard import CacheTimeout, Guard, deadline_for
from .transfer import Fault, collect_files, discard, place, stage, store

if TYPE_CHECKING:  # names for type checkers only
    from .backends import DirBackend, FsspecBackend
    from .entry import Produced

MODES = ("readwrite", "read", "write")
DEFAULT_TIMEOUT = 30.0  # seconds an operation on the cache may take (a transfer gets a second per MB more)


class CacheSession:
    def __init__(self, backend: "DirBackend | FsspecBackend", *, mode: str = "readwrite",
                 timeout: float = DEFAULT_TIMEOUT, warn: Callable[[str], None]) -> None:
        assert mode in MODES, mode
        self.backend = backend
        self.url = backend.url
        self.mode = mode
        self.reads = mode in ("read", "readwrite")
        self.writes = mode in ("write", "readwrite")
        self.timeout = timeout
        self.warn = warn
        self.off: Optional[str] = None  # why the cache was turned off for this run
        self.counts: Dict[str, int] = {"hits": 0, "misses": 0, "stored": 0, "faults": 0}
        self._guard = Guard()  # lookups and restores: the run waits for each
        self._writer = Guard()  # stores: queued, so that a lookup never waits behind them
        self._cancelled = False
        # Stores handed to the cache's thread and not yet seen done: a run does not wait for them task by
        # task (they would cost a run with no hits half its time on trivial tasks), only at its end.
        self._stores: List[Tuple[object, int]] = []  # (call, bytes)

    def _call(self, timeout: float, fn: Callable[..., object], *args: object) -> object:
        try:
            return self._guard.call(timeout, fn, *args)
        except CacheTimeout:
            self._cancelled = True
            self._turn_off(f"did not answer within {timeout:g}s")
        except Fault:
            raise
        except Exception as exc:  # any failure of the backend (OSError, botocore's, fsspec's): the cache as a whole
            self._turn_off(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise _Off()

    def _turn_off(self, why: str) -> None:
        if self.off is None:
            self.off = why
            self.warn(f"cache {self.url}: {why}; this run goes on without the cache")

    def lookup(self, key: str, task: str) -> Optional[Entry]:
        """The entry stored under `key`, if the cache has a whole one."""
        self._collect_stores()
        if not self.reads or self.off is not None:
            return None
        try:
            data = self._call(self.timeout, self.backend.read, entry_path(key))
        except _Off:
            return None
        if data is None:
            self.counts["misses"] += 1
            return None
        try:
            return parse_entry(data, key)  # type: ignore[arg-type]
        except CorruptEntry as exc:
            self._fault(key, task, str(exc))
            return None

    def restore(self, entry: Entry, root: str, task: str) -> bool:
        """Put the entry's outputs in place under `root`, each file checked; False (nothing changed) on a fault."""
        if self.off is not None:
            return False
        try:
            staged = self._call(deadline_for(self.timeout, entry.size), stage, self.backend, root, entry,
                                lambda: self._cancelled)
        except Fault as exc:
            self._fault(entry.key, task, str(exc))
            if exc.blob is not None and self.writes:
                # Useless to everyone: gone, the task's run uploads it again.
                try:
                    self._call(self.timeout, self.backend.delete, exc.blob)
                except _Off:
                    pass
            return False
        except _Off:
            return False
        try:
            place(staged)  # type: ignore[arg-type]
        except OSError as exc:
            discard(staged)  # type: ignore[arg-type]
            self._fault(entry.key, task, f"could not put its outputs in place: {exc}")
            return False
        self.counts["hits"] += 1
        if self.writes:  # least recently used first, for gc
            try:
                self._call(self.timeout, self.backend.touch, entry_path(entry.key))
            except _Off:
                pass
        return True

    def _fault(self, key: str, task: str, what: str) -> None:
        self.counts["faults"] += 1
        self.counts["misses"] += 1
        self.warn(f"cache entry {key[:16]} ({task}): {what}; the task runs, and its outputs replace the entry")

    def store(self, key: str, root: str, outputs: Mapping[str, Optional[str]], hash_of: Callable[[str], Optional[str]],
              produced: Produced, *, wait: bool = True) -> bool:
        """Keep a successful task's outputs under `key`; False when not stored (read mode, off, changed files).

        Without `wait`, the store is queued on the cache's thread and True
        means only that: `finish` waits for what is left.
        """
        self._collect_stores()
        if not self.writes or self.off is not None:
            return False
        files = collect_files(root, outputs, hash_of)
        if files is None:
            return False
        entry = Entry(key, {o: h for o, h in outputs.items() if h is not None}, files, produced)
        if not wait:
            self._stores.append((self._writer.submit(store, self.backend, root, entry), entry.size))
            return True
        try:
            stored = self._call(deadline_for(self.timeout, entry.size), store, self.backend, root, entry)
        except _Off:
            return False
        if stored:
            self.counts["stored"] += 1
        return bool(stored)

    def _collect_stores(self, *, deadline: Optional[float] = None) -> None:
        """Count the queued stores that are done; with a `deadline` (monotonic), wait for the rest until then."""
        pending: List[Tuple[object, int]] = []
        for call, size in self._stores:
            if self.off is not None:
                break
            try:
                if deadline is None:
                    if not call.done.is_set():  # type: ignore[attr-defined]
                        pending.append((call, size))
                        continue
                    stored = self._guard.wait(call, 0)  # type: ignore[arg-type]
                else:
                    stored = self._guard.wait(call, max(0.0, deadline - time.monotonic()))  # type: ignore[arg-type]
            except CacheTimeout:
                self._cancelled = True
                self._turn_off(f"{len(self._stores) - len(pending)} outputs were not stored in time")
                break
            except Exception as exc:
                self._turn_off(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                break
            if stored:
                self.counts["stored"] += 1
        self._stores = pending if self.off is None else []

    def finish(self, run_id: str, *, host: str, project: str) -> None:
        """Wait for the queued stores (as long as they may take), and say in the cache what this run did with it."""
        if self._stores:
            budget = self.timeout + sum(size for _, size in self._stores) / 1_000_000
            self._collect_stores(deadline=time.monotonic() + budget)
        self._guard.close()
        self._writer.close()
        if not self.writes or self.off is not None or not any(self.counts.values()):
            return
        doc = dict(self.counts, run=run_id, host=host, project=project, at=time.time())
        self._guard = Guard()
        try:
            self._call(self.timeout, self.backend.write_atomic, run_path(run_id), json.dumps(doc).encode())
        except _Off:
            pass
        finally:
            self._guard.close()


class _Off(Exception):
    """The cache was turned off during this call (already warned)."""


def session_for(url: str, *, base: str, mode: str = "readwrite", timeout: Optional[float] = None,
                warn: Callable[[str], None]) -> CacheSession:
    """A run's session on the cache at `url` (CacheURLError, exit 2, for a URL nothing serves)."""
    from .backends import open_backend

    if timeout is None:
        timeout = float(os.environ.get("FLOWMAKE_CACHE_TIMEOUT") or DEFAULT_TIMEOUT)
    return CacheSession(open_backend(url, base=base, timeout=timeout), mode=mode, timeout=timeout, warn=warn)


__all__: "List[str]" = ["CacheSession", "MODES", "session_for"]
