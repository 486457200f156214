"""A cache of the loaded Flowfile, so a run does not re-parse and re-check
ten thousand TOML tables that did not change.

A loaded Flowfile is a function of the Flowfile's bytes and of what the
loader learnt from the disk: which paths exist and as what (plain inputs
must exist or be produced), and what each glob matched. The cache keeps the
result with the hash of the bytes and those disk facts; it is used only when
the bytes hash the same and every fact still holds (one stat per checked
directory whose entries have not changed, else one per checked path, and
one listing per globbed directory), so a new file matching a glob or
a deleted source file sends the load down the full path, with its errors.
The Flowfile is always read, so an edit is always seen. The graph, a pure
function of the loaded Flowfile, is kept beside it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from . import __version__
from .hashing import RACY_WINDOW_NS, hash_bytes
from .model import Flowfile
from .paths import Disk, kinds_by_dir
from .records import TYPE_CHECKING

if TYPE_CHECKING:  # typing costs every run ~4 ms to import (records.py)
    from typing import Any, Callable, Optional, Tuple, TypeVar

    T = TypeVar("T")

CACHE_NAME = "flowfile.cache"
_FORMAT = 5  # 4, 5: the model's records, then the graph, became NamedTuples


def load_cached(path: Path, state_dir: Path, derive: Callable[[Flowfile], T]) -> Tuple[Flowfile, T]:
    """The loaded Flowfile and `derive(flowfile)` (the graph), from the cache when it still holds.

    `derive` must be a pure function of the Flowfile; whatever it raises on a
    fresh load propagates and nothing is cached.
    """
    path = Path(os.path.abspath(path))
    cache = state_dir / CACHE_NAME
    hit = _lookup(path, cache)
    if hit is not None:
        return hit
    from .flowfile import load_observed  # the whole loader: imported only on a miss

    flowfile, disk = load_observed(path)  # raises every problem, as `load` does
    derived = derive(flowfile)
    kinds, globs = disk.observations()
    grouped = kinds_by_dir(kinds)
    stamps = disk.stamps(grouped, racy_window_ns=RACY_WINDOW_NS)
    key = (_FORMAT, __version__, str(path), flowfile.source_hash)
    if flowfile.has_secrets:
        # A command may embed a secret's value (through a var, say), and nothing
        # under .flowmake may hold one: such Flowfiles are loaded afresh each time.
        return flowfile, derived
    if state_dir.is_dir():  # never create .flowmake just to cache
        tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
        try:
            entry = (key, flowfile, derived, grouped, stamps, globs)
            tmp.write_bytes(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only project still runs, only slower
    return flowfile, derived


def _lookup(path: Path, cache: Path) -> Optional[Tuple[Flowfile, Any]]:
    try:
        digest = hash_bytes(path.read_bytes())
        key, flowfile, derived, grouped, stamps, globs = pickle.loads(cache.read_bytes())
    except Exception:  # missing, unreadable or from another version: load afresh
        return None
    if key != (_FORMAT, __version__, str(path), digest) or not isinstance(flowfile, Flowfile):
        return None
    if not Disk(flowfile.root).agrees_with(grouped, stamps, globs):
        return None
    return flowfile, derived
