"""`flowmake cache stats` and `flowmake cache gc`: what a cache holds, and trimming it.

gc removes whole entries, least recently used first (a restore marks its
entry used), until the cache fits `max_size` or no entry is older than
`older_than`; then the blobs no entry names. It is safe beside running
writers: a writer touches (or uploads) every blob before it writes the entry
that names it and looks at its blobs again after, and gc removes only blobs
untouched for GRACE seconds that no entry names when they are removed; a
writer's temporary files older than GRACE are a killed writer's leftovers.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Set, Tuple

from ..errors import FlowError
from .entry import PACKS, ROOT, CorruptEntry, Entry, blob_path, entry_of, parse_entry
from .packs import index_keys, is_index, pack_of, read_pack

if TYPE_CHECKING:  # names for type checkers only
    from .backends import DirBackend, FsspecBackend

    Backend = "DirBackend | FsspecBackend"

GRACE = 3600.0  # seconds: longer than any writer takes between touching its blobs and writing its entry
RECENT_RUNS = 20  # runs `stats` computes the hit rate over
KEEP_RUNS = 200  # run records gc keeps

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    m = _SIZE_RE.match(text)
    if not m:
        raise FlowError(f"--max-size {text!r} is not a size", hint='write e.g. "10GB", "500MB", "2GiB" or a byte count')
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_age(text: str) -> float:
    m = _AGE_RE.match(text)
    if not m:
        raise FlowError(f"--older-than {text!r} is not an age", hint='write e.g. "30d", "12h", "2w" or "90m"')
    return float(m.group(1)) * _AGE_UNITS[m.group(2)]


class Listing(NamedTuple):
    # path -> (size, mtime). An "entry" is what gc removes as a whole: an entry file, or a pack's index
    # (packs.py) with the size of index and pack, and the index's time (a restore touches it).
    entries: Dict[str, Tuple[int, float]]
    blobs: Dict[str, Tuple[int, float]]
    temps: Dict[str, Tuple[int, float]]  # a killed writer's leftovers: temporary names, packs without an index
    runs: Dict[str, Tuple[int, float]]


def list_cache(backend: Backend) -> Listing:
    out = Listing({}, {}, {}, {})
    for kind, bucket in (("entries", out.entries), ("blobs", out.blobs), ("runs", out.runs)):
        for path, size, mtime in backend.listing(f"{ROOT}/{kind}"):
            (out.temps if ".tmp-" in path else bucket)[path] = (size, mtime)
    packs: Dict[str, Tuple[int, float]] = {}
    for path, size, mtime in backend.listing(PACKS):
        (out.temps if ".tmp-" in path else packs)[path] = (size, mtime)
    for path, (size, mtime) in packs.items():
        if is_index(path):
            out.entries[path] = (size + packs.get(pack_of(path), (0, 0.0))[0], mtime)
        elif path.endswith(".pack") and path[: -len(".pack")] + ".idx" not in packs:
            out.temps[path] = (size, mtime)
    return out


def _remove(backend: Backend, path: str) -> None:
    backend.delete(path)  # a pack's index first: no reader finds the pack after it
    if is_index(path):
        backend.delete(pack_of(path))


def entries_in(backend: Backend, path: str) -> Optional[List[Entry]]:
    """The entries of a listing's entry (one of its own, or a pack's); None for one that cannot be read."""
    data = backend.read(path)
    try:
        if not is_index(path):
            return [] if data is None else [parse_entry(data, path.rsplit("/", 1)[-1][: -len(".json")])]
        docs = read_pack(backend, path)
        return [entry_of((docs or {}).get(k), k) for k in index_keys(data)] if docs is not None else []
    except CorruptEntry:
        return None


def stats(backend: Backend) -> dict:
    """Entries, blobs, bytes, and the hit rate of the most recent runs that used the cache."""
    listing = list_cache(backend)
    keys: Set[str] = set()  # a key stored by two runs at once is in both their packs: one entry
    for path in listing.entries:
        keys.update(index_keys(backend.read(path)) if is_index(path) else [path.rsplit("/", 1)[-1][:-5]])
    runs: List[dict] = []
    for path in sorted(listing.runs)[-RECENT_RUNS:]:
        data = backend.read(path)
        try:
            runs.append(json.loads(data or b""))
        except ValueError:
            continue
    hits = sum(int(r.get("hits", 0)) for r in runs)
    looked = hits + sum(int(r.get("misses", 0)) for r in runs)
    return {
        "url": backend.url, "entries": len(keys), "blobs": len(listing.blobs),
        "bytes": sum(s for s, _ in listing.blobs.values()) + sum(s for s, _ in listing.entries.values()),
        "recent_runs": len(runs), "hits": hits, "lookups": looked,
        "hit_rate": (hits / looked) if looked else None,
        "runs": [{k: r.get(k) for k in ("run", "host", "project", "hits", "misses", "stored", "faults")}
                 for r in runs],
    }


def _entry_blobs(backend: Backend, path: str) -> Optional[Set[str]]:
    """The blob paths an entry names; None for an entry that cannot be read (gc removes it)."""
    entries = entries_in(backend, path)
    if entries is None:
        return None
    return {blob_path(b.hash) for e in entries for b in e.blobs.values()}


def gc(backend: Backend, *, max_size: Optional[int] = None, older_than: Optional[float] = None,
       now: Optional[float] = None, grace: float = GRACE) -> dict:
    now = time.time() if now is None else now
    listing = list_cache(backend)
    names: Dict[str, Optional[Set[str]]] = {p: _entry_blobs(backend, p) for p in listing.entries}
    doomed: List[str] = [p for p, blobs in names.items() if blobs is None]
    keep = sorted((p for p in names if names[p] is not None), key=lambda p: listing.entries[p][1])
    if older_than is not None:
        doomed += [p for p in keep if listing.entries[p][1] < now - older_than]
        keep = [p for p in keep if listing.entries[p][1] >= now - older_than]
    if max_size is not None:
        refs: Dict[str, int] = {}
        for p in keep:
            for b in names[p] or ():
                refs[b] = refs.get(b, 0) + 1
        # Entries count too: small files live inside them (entry.INLINE_MAX).
        total = sum(listing.blobs.get(b, (0, 0.0))[0] for b in refs) + sum(listing.entries[p][0] for p in keep)
        while keep and total > max_size:
            oldest = keep.pop(0)
            doomed.append(oldest)
            total -= listing.entries[oldest][0]
            for b in names[oldest] or ():
                refs[b] -= 1
                if refs[b] == 0:
                    total -= listing.blobs.get(b, (0, 0.0))[0]
    for path in doomed:
        _remove(backend, path)
    # Named by an entry now, including one a writer wrote since the listing: looked at again just before.
    live: Set[str] = set()
    for path in list_cache(backend).entries:
        live |= names[path] if names.get(path) is not None else (_entry_blobs(backend, path) or set())
    freed, removed_blobs = 0, 0
    for path, (size, mtime) in listing.blobs.items():
        if path not in live and mtime < now - grace:
            backend.delete(path)
            freed += size
            removed_blobs += 1
    for path, (_size, mtime) in listing.temps.items():
        if mtime < now - grace:
            backend.delete(path)
    for path in sorted(listing.runs)[:-KEEP_RUNS]:
        backend.delete(path)
    left = {p: v for p, v in listing.blobs.items() if p in live or v[1] >= now - grace}
    freed += sum(listing.entries[p][0] for p in doomed if p in listing.entries)
    kept_entries = sum(v[0] for p, v in listing.entries.items() if p not in set(doomed))
    return {"removed_entries": len(doomed), "removed_blobs": removed_blobs, "freed_bytes": freed,
            "entries": len(listing.entries) - len(doomed), "blobs": len(left),
            "bytes": sum(s for s, _ in left.values()) + kept_entries}


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
