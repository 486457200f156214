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
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Set, Tuple

from .entry import CorruptEntry, Entry, entry_of, entry_path, parse_entry, run_path
from .packs import pack_index, read_pack
from .guard import CacheTimeout, Guard, Prefetch, deadline_for
from .transfer import Fault, collect_files, discard, place, prepare, stage, store, write_packed
from .writer import Writer

if TYPE_CHECKING:  # names for type checkers only
    from .backends import DirBackend, FsspecBackend
    from .entry import Produced

MODES = ("readwrite", "read", "write")
DEFAULT_TIMEOUT = 30.0  # seconds an operation on the cache may take (a transfer gets a second per MB more)
# A cache of more than LIST_MAX entry files is not listed (that would cost more than the lookups it saves).
LIST_MAX = 200_000
LIST_WAIT = 0.05  # seconds the first lookup waits for that listing (one request on S3, for a small cache)


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
        # Stores: queued for a thread of their own and written in batches (writer.py); the run waits
        # for them only at its end.
        self._writer = Writer(self._prepare, lambda prepared: write_packed(self.backend, prepared))
        self._cancelled = False
        self._reported = 0  # stores of the writer already counted
        # The keys of the cache's entry files, listed once, from the first lookup on, on a thread of their
        # own: then a miss costs no round trip (a request on S3, a hand-off to the cache's thread and back
        # in a directory). Until the listing is in, or if it fails or finds too many, each lookup asks.
        self._listing: Optional[Prefetch] = None
        self._packs: Optional[Dict[str, str]] = None  # key -> index of the newest pack holding it (packs.py)
        # index -> its pack's entries, once read (None: gone since it was listed; CorruptEntry: unreadable)
        self._pack_docs: Dict[str, object] = {}
        self._in_pack: Dict[str, str] = {}  # key of an entry found in a pack -> that pack's index
        self._repair: Set[str] = set()  # keys whose entry was damaged: stored again as files of their own
        self._touched: Set[str] = set()

    def _call(self, timeout: float, fn: Callable[..., object], *args: object) -> object:
        try:
            return self._guard.call(timeout, fn, *args)
        except CacheTimeout:
            self._cancelled = True
            self._turn_off(f"did not answer within {timeout:g}s")
        except (Fault, CorruptEntry):  # this entry's (or pack's) fault, not the cache's
            raise
        except Exception as exc:  # any failure of the backend (OSError, botocore's, fsspec's): the cache as a whole
            self._turn_off(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise _Off()

    def _turn_off(self, why: str) -> None:
        if self.off is None:
            self.off = why
            self.warn(f"cache {self.url}: {why}; this run goes on without the cache")

    def lookup(self, key: str, task: str) -> Optional[Entry]:
        """The entry stored under `key`, if the cache has a whole one: its own file, else the newest pack's."""
        self._check_writer()
        if not self.reads or self.off is not None:
            return None
        try:
            if self._packs is None:  # one listing and a read per pack (at once), at the first lookup
                self._packs = self._call(self.timeout, pack_index, self.backend)  # type: ignore[assignment]
                self._listing = Prefetch(self.backend.entry_keys, LIST_MAX)
                self._listing.result(wait=LIST_WAIT)  # a small cache is listed at once: no lookup goes out
            known = self._listing.result() if self._listing is not None else None
            data = None
            if known is None or key in known:
                data = self._call(self.timeout, self.backend.read, entry_path(key))
            if data is None:
                index = (self._packs or {}).get(key)
                if index is None:
                    self.counts["misses"] += 1
                    return None
                return self._from_pack(key, task, index)
        except _Off:
            return None
        try:
            return parse_entry(data, key)  # type: ignore[arg-type]
        except CorruptEntry as exc:
            self._fault(key, task, str(exc))
            return None

    def _from_pack(self, key: str, task: str, index: str) -> Optional[Entry]:
        try:
            if index not in self._pack_docs:
                try:
                    self._pack_docs[index] = self._call(self.timeout, read_pack, self.backend, index)  # type: ignore
                except CorruptEntry as exc:  # each of its keys is a fault, and is repaired as an entry of its own
                    self._pack_docs[index] = exc
            docs = self._pack_docs[index]
            if isinstance(docs, CorruptEntry):
                raise docs
            if docs is None:  # removed by a gc since it was listed
                self.counts["misses"] += 1
                return None
            entry = entry_of(docs.get(key), key)
        except CorruptEntry as exc:
            self._fault(key, task, str(exc))
            return None
        self._in_pack[key] = index
        return entry

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
        used = self._in_pack.get(entry.key) or entry_path(entry.key)
        if self.writes and used not in self._touched:  # least recently used first, for gc (a pack: as a whole)
            self._touched.add(used)
            try:
                self._call(self.timeout, self.backend.touch, used)
            except _Off:
                pass
        return True

    def _fault(self, key: str, task: str, what: str) -> None:
        self._repair.add(key)
        self.counts["faults"] += 1
        self.counts["misses"] += 1
        self.warn(f"cache entry {key[:16]} ({task}): {what}; the task runs, and its outputs replace the entry")

    def store(self, key: str, root: str, outputs: Mapping[str, Optional[str]], hash_of: Callable[[str], Optional[str]],
              produced: Produced, *, wait: bool = True) -> bool:
        """Keep a successful task's outputs under `key`; False when not stored (read mode, off, changed files).

        Without `wait`, the store is queued on the cache's thread and True
        means only that: `finish` waits for what is left.
        """
        self._check_writer()
        if not self.writes or self.off is not None:
            return False
        files = collect_files(root, outputs, hash_of)
        if files is None:
            return False
        entry = Entry(key, {o: h for o, h in outputs.items() if h is not None}, files, produced)
        if not wait:
            self._writer.put((root, entry), entry.size, alone=key in self._repair)
            return True
        try:
            stored = self._call(deadline_for(self.timeout, entry.size), store, self.backend, root, entry)
        except _Off:
            return False
        if stored:
            self.counts["stored"] += 1
        return bool(stored)

    def _prepare(self, item: Tuple[str, Entry]) -> Optional[Tuple[str, Entry]]:
        """On the writer's thread: the entry's blobs uploaded, its small files read in."""
        prepared = prepare(self.backend, item[0], item[1])
        return None if prepared is None else (item[0], prepared)

    def _check_writer(self) -> None:
        """Count the queued stores written so far; a writer that failed turns the cache off (one warning)."""
        writer = self._writer
        if writer.stored != self._reported:
            self.counts["stored"] += writer.stored - self._reported
            self._reported = writer.stored
        if writer.error is not None and self.off is None:
            exc = writer.error
            self._turn_off(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def finish(self, run_id: str, *, host: str, project: str) -> None:
        """Wait for the queued stores (as long as they may take), and say in the cache what this run did with it."""
        writer = self._writer
        if writer.started:
            budget = self.timeout + writer.bytes_left / 1_000_000
            if not writer.drain(budget):
                self._cancelled = True
                self._check_writer()
                self._turn_off(f"{writer.pending} outputs were not stored within {budget:g}s")
            self._check_writer()
        self._guard.close()
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
