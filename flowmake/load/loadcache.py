"""A cache of the loaded Flowfile, so a run does not re-parse and re-check
ten thousand TOML tables that did not change.

A loaded Flowfile is a function of the Flowfile's bytes and of what the
loader learnt from the disk: which paths exist and as what (plain inputs
must exist or be produced), and what each glob matched. The cache keeps the
result with the hash of the bytes and those disk facts; it is used only when
the bytes hash the same and every fact still holds (one stat per checked
directory whose inode, mtime and ctime have not changed, else one per
checked path, and one listing per globbed directory), so a new file matching
a glob or a deleted source file sends the load down the full path, with its
errors. The Flowfile and the files it includes are always read, so an edit
is always seen, whatever their stats say (a file newly matched by an include
glob is a changed glob match). The graph, a pure function of the loaded
Flowfile, is kept beside it.

The task specs are kept in pages of 64 that are unpickled as they are looked up:
a run after one edit in 10,000 tasks needs a few of them, and unpickling
all 10,000 took ~13 ms.
"""

from __future__ import annotations

import os
from collections import abc
from pathlib import Path

from .. import __version__
from ..model import Flowfile, TaskSpec
from ..records import TYPE_CHECKING
from ..store.fsclock import RACY_WINDOW_NS
from ..store.hashing import hash_bytes, source_hash
from .paths import Disk, kinds_by_dir

try:  # CPython's C unpickler alone: pickle.py's own imports cost every cached load ~0.9 ms
    from _pickle import loads as _unpickle
except ImportError:  # another Python
    from pickle import loads as _unpickle

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import (
        Any,
        Callable,
        Dict,
        Iterator,
        List,
        Mapping,
        Optional,
        Tuple,
        TypeVar,
    )

    T = TypeVar("T")

CACHE_NAME = "flowfile.cache"
_FORMAT = 15  # 4, 5: the model's records, then the graph, became NamedTuples; 6, 7: paged tasks, graph.readers;
# 8, 9: matrix_globs, includes; 10: directory stamps with the ctime; 11: Flowfile.output; 12: Flowfile.junit_xml;
# 13: Flowfile.schedules; 14: the graph pickled apart, lines after a comment edit, Flowfile.document_hash;
# 15: the graph's maps and the checked paths in buckets (pages.py)
_PAGE = 64  # task specs unpickled together: a cone spread over a layered graph touches a page per few tasks


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
    import pickle

    from .flowfile import load_observed  # the whole loader: imported only on a miss

    flowfile, disk = load_observed(path)  # raises every problem, as `load` does
    derived = derive(flowfile)
    kinds, globs = disk.observations()
    grouped = kinds_by_dir(kinds)
    stamps = disk.stamps(grouped, racy_window_ns=RACY_WINDOW_NS)
    if flowfile.has_secrets:
        # A command may embed a secret's value (through a var, say), and nothing
        # under .flowmake may hold one: such Flowfiles are loaded afresh each time.
        return flowfile, derived
    if state_dir.is_dir():  # never create .flowmake just to cache
        from .pages import paged, paged_fields

        paged_flowfile = flowfile._replace(tasks=PagedTasks.pack(flowfile.tasks))
        # The graph's maps and the checked paths by directory, in buckets (pages.py): a run after one
        # change looks up a few entries of each, and a directory's stamp vouches for all its paths.
        kept = paged_fields(derived) if hasattr(derived, "_fields") else derived
        _store(cache, paged_flowfile, pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL),
               ({directory: paged(in_dir) for directory, in_dir in grouped.items()}, stamps, globs))
    return flowfile, derived


def _store(cache: Path, paged: Flowfile, derived: bytes, facts: Tuple[Any, Any, Any]) -> None:
    import pickle  # writing the cache: after a Flowfile edit only

    key = (_FORMAT, __version__, str(paged.path), paged.source_hash)
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    try:
        # The graph is kept pickled: a cache rewritten after a comment edit copies it as it is.
        # Streamed to the file (pickle frames of 64 kB), not built as one bytes object first:
        # at 100,000 tasks that copy was most of a command edit's peak memory.
        with open(tmp, "wb") as f:
            pickle.dump((key, paged, derived, *facts), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only project still runs, only slower


def _lookup(path: Path, cache: Path) -> Optional[Tuple[Flowfile, Any]]:
    try:
        digest = hash_bytes(path.read_bytes())
        key, flowfile, derived, grouped, stamps, globs = _unpickle(cache.read_bytes())
    except Exception:  # missing, unreadable or from another version: load afresh
        return None
    if not isinstance(flowfile, Flowfile) or not isinstance(derived, bytes):
        return None
    if flowfile.includes:
        # Every included file is read too: an edit of any of them is seen as an edit of the Flowfile.
        try:
            digest = source_hash(((path.name, digest),
                                  *((rel, hash_bytes((flowfile.root / rel).read_bytes())) for rel in flowfile.includes)))
        except OSError:  # an included file gone: the full load says so
            return None
    if key[:3] != (_FORMAT, __version__, str(path)):
        return None
    if key[3] != digest:
        # Edited: if only comments or layout changed, the cached load holds but for its lines.
        from .document import relocated

        moved = relocated(flowfile, path)
        if moved is None or not Disk(flowfile.root).agrees_with(grouped, stamps, globs):
            return None
        flowfile = moved[0]._replace(tasks=flowfile.tasks.placed(moved[1]))
        _store(cache, flowfile, derived, (grouped, stamps, globs))  # the next run finds it by the bytes
        return flowfile, _unpickle(derived)
    if not Disk(flowfile.root).agrees_with(grouped, stamps, globs):
        return None
    return flowfile, _unpickle(derived)


class PagedTasks(abc.Mapping):
    """A cached Flowfile's tasks, in declaration order, unpickled a page at a time as they are looked up."""

    __slots__ = ("_names", "_pages", "_page_size", "_groups", "_lines", "_index", "_specs")

    def __init__(self, names: Tuple[str, ...], pages: List[bytes], page_size: int,
                 groups: Mapping[str, Tuple[str, ...]], lines: Optional[Dict[str, Optional[int]]] = None) -> None:
        self._names = names
        self._pages = pages
        self._page_size = page_size
        self._groups = groups  # Flowfile.groups(), asked by every run
        # Task table -> its line now, when the Flowfile was edited (comments, layout) since the pages were made.
        self._lines = lines
        self._index: Optional[Dict[str, int]] = None  # name -> position, made on the first lookup
        self._specs: Dict[str, TaskSpec] = {}

    @classmethod
    def pack(cls, tasks: Mapping[str, TaskSpec]) -> "PagedTasks":
        import pickle  # writing the cache: after a Flowfile edit only

        specs = list(tasks.values())
        groups: Dict[str, List[str]] = {}
        for spec in specs:
            groups.setdefault(spec.group, []).append(spec.name)
        from .pages import paged  # a run asks a few groups (commands.flowfile_warnings, its targets)

        return cls(tuple(tasks), [pickle.dumps(specs[i:i + _PAGE], protocol=pickle.HIGHEST_PROTOCOL)
                                  for i in range(0, len(specs), _PAGE)], _PAGE,
                   paged({group: tuple(names) for group, names in groups.items()}))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (PagedTasks, (self._names, self._pages, self._page_size, self._groups, self._lines))

    def groups(self) -> Mapping[str, Tuple[str, ...]]:
        return self._groups

    def placed(self, lines: Dict[str, Optional[int]]) -> "PagedTasks":
        """The same tasks, each at its table's line in `lines`."""
        return PagedTasks(self._names, self._pages, self._page_size, self._groups, lines)

    def _position(self) -> Dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self._names, range(len(self._names))))  # C loops: ~4x a comprehension
        return self._index

    def __getitem__(self, name: str) -> TaskSpec:
        spec = self._specs.get(name)
        if spec is None:
            page = self._position()[name] // self._page_size  # KeyError, as a dict's, for no such task
            lines = self._lines
            for loaded in _unpickle(self._pages[page]):
                if lines is not None and lines.get(loaded.group, loaded.line) != loaded.line:
                    loaded = loaded._replace(line=lines[loaded.group])
                self._specs[loaded.name] = loaded
            spec = self._specs[name]
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._position()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
