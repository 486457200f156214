"""Packs: the entries a run stores, many in one file, so that a run of many tasks writes a few files, not one per task.

Creating a file in a cache costs more than a trivial task does (a directory
entry, an inode and a journal commit on a local disk; a request on an object
store), and a run with no hits stores every task it runs: one file per task
cost a run of 1,000 trivial tasks a quarter of its time. A writer that has
at least PACK_MIN entries at hand writes them as one pack instead:

    v1/packs/<name>.pack   {"format": 1, "entries": {key: entry, ...}}   (entry.py's documents)
    v1/packs/<name>.idx    the keys it holds, one a line

Blobs first (transfer.prepare), then the pack, then its index, each whole
or not at all (backends.write_atomic). A reader knows a pack only by its
index, so a writer killed half-way leaves at most a pack without an index,
which nobody reads and gc removes. A key in several packs is taken from the
newest (names sort by time); an entry file of its own (entries/) comes
before any pack: a repair is written as one. A restore marks its pack used
by touching the index; gc removes whole packs, least recently used first.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from .entry import PACKS, CorruptEntry, Entry

if TYPE_CHECKING:  # names for type checkers only
    from .backends import DirBackend, FsspecBackend

    Backend = "DirBackend | FsspecBackend"

PACK_FORMAT = 1
PACK_MIN = 16  # fewer entries than this are written as files of their own (a run of a few slow tasks)


def write_pack(backend: Backend, entries: Sequence[Entry]) -> str:
    """Write the entries as one pack; the path of its index."""
    base = f"{PACKS}/{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.urandom(6).hex()}"
    doc = {"format": PACK_FORMAT, "entries": {e.key: e.to_doc() for e in entries}}
    backend.write_atomic(base + ".pack", json.dumps(doc, separators=(",", ":")).encode())  # unsorted: half the time
    backend.write_atomic(base + ".idx", "".join(e.key + "\n" for e in entries).encode())
    return base + ".idx"


def is_index(path: str) -> bool:
    return path.endswith(".idx") and ".tmp-" not in path


def pack_of(index: str) -> str:
    return index[: -len(".idx")] + ".pack"


def pack_index(backend: Backend) -> Dict[str, str]:
    """key -> the index of the newest pack that holds it (a listing and a read per pack)."""
    indexes = sorted(p for p, _, _ in backend.listing(PACKS) if is_index(p))
    found: Dict[str, str] = {}
    for path, data in zip(indexes, backend.read_many(indexes)):
        if data is None:  # removed by a gc since the listing
            continue
        for key in data.decode("ascii", "replace").split():
            if len(key) == 64:
                found[key] = path  # oldest first: a newer pack's entry replaces an older one's
    return found


def index_keys(data: Optional[bytes]) -> List[str]:
    return [k for k in (data or b"").decode("ascii", "replace").split() if len(k) == 64]


def read_pack(backend: Backend, index: str) -> Optional[Dict[str, object]]:
    """key -> entry document of the pack `index` names; None when it is gone; CorruptEntry when unreadable."""
    data = backend.read(pack_of(index))
    if data is None:
        return None
    try:
        doc = json.loads(data.decode())
        if not isinstance(doc, dict) or doc.get("format") != PACK_FORMAT or not isinstance(doc.get("entries"), dict):
            raise CorruptEntry(f"{pack_of(index)} is not a pack of format {PACK_FORMAT}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptEntry(f"unreadable pack {pack_of(index)} ({type(exc).__name__})") from None
    return doc["entries"]


__all__: "List[str]" = ["PACK_MIN", "write_pack", "pack_index", "read_pack", "is_index", "pack_of", "index_keys"]
