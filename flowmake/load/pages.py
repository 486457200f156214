"""A dict kept in the load cache as pickled buckets, each unpickled when one of its keys is first looked up.

The cached graph's maps (deps, dependents, producers, readers) and the
cache's disk facts hold an entry per task or per file: at 100,000 tasks
unpickling them all took ~150 ms of a run that changed one source, which
looks up the few entries of its cone. So each big dict is stored as
buckets of about `BUCKET` entries, chosen by a stable hash of the key (CRC-32
of its UTF-8 bytes; `hash` differs between processes), with the keys in
order beside them. A lookup unpickles the bucket its key would be in; a hit
afterwards is a plain dict lookup in C. Anything that needs the whole dict
(iterating, its items, comparing, printing) unpickles every bucket first
and puts the entries back in their order. Read-only: nothing mutates a
cached graph.
"""

from __future__ import annotations

from zlib import crc32

from ..records import TYPE_CHECKING

try:  # CPython's C unpickler alone (see loadcache.py)
    from _pickle import loads as _unpickle
except ImportError:  # another Python
    from pickle import loads as _unpickle

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Any, List, Mapping, Set

BUCKET = 64  # entries per bucket, as loadcache's task pages
PAGED_FROM = 4 * BUCKET  # smaller dicts are pickled as they are


def _bucket(key: str, buckets: int) -> int:
    return crc32(key.encode("utf-8", "surrogatepass")) % buckets


def paged(value: Any) -> Any:
    """`value` ready to pickle: a big dict of str keys as a PagedDict, anything else as it is."""
    if type(value) is dict and len(value) >= PAGED_FROM and all(type(k) is str for k in value):
        return PagedDict.pack(value)
    return value


def paged_fields(record: Any) -> Any:
    """A NamedTuple (the graph) with each of its big dicts paged."""
    return record._replace(**{name: paged(getattr(record, name)) for name in record._fields})


class PagedDict(dict):
    """A dict whose entries are unpickled a bucket at a time, as their keys are looked up."""

    __slots__ = ("_count", "_buckets", "_keys", "_loaded", "_complete", "_ordered")

    @classmethod
    def pack(cls, mapping: Mapping[str, Any]) -> "PagedDict":
        import pickle  # writing the cache: after a Flowfile edit only

        n = max(1, -(-len(mapping) // BUCKET))
        buckets: List[dict] = [{} for _ in range(n)]
        for key, value in mapping.items():
            buckets[_bucket(key, n)][key] = value
        dump = pickle.dumps
        return _restore(len(mapping), [dump(b, protocol=pickle.HIGHEST_PROTOCOL) for b in buckets],
                        dump(tuple(mapping), protocol=pickle.HIGHEST_PROTOCOL))

    def __reduce__(self) -> Any:
        return (_restore, (self._count, self._buckets, self._keys))

    def _load(self, key: str) -> None:
        buckets = self._buckets
        i = _bucket(key, len(buckets))
        loaded: Set[int] = self._loaded
        if i not in loaded:
            loaded.add(i)
            dict.update(self, _unpickle(buckets[i]))
            if len(loaded) * 8 >= len(buckets):
                # Looked up across the board (a full plan, status): the rest at once, and then
                # every lookup is a plain dict's (one by one, 100,000 lookups cost 3x one unpickle).
                self._load_all()

    def _load_all(self) -> None:
        if not self._complete:
            loaded, update = self._loaded, dict.update
            for i, bucket in enumerate(self._buckets):
                if i not in loaded:
                    update(self, _unpickle(bucket))
            loaded.update(range(len(self._buckets)))
            self._complete = True

    def _fill(self) -> None:
        """Every entry, in the order of the dict that was packed."""
        if not self._ordered:
            self._load_all()
            entries = [(key, dict.__getitem__(self, key)) for key in _unpickle(self._keys)]
            dict.clear(self)
            dict.update(self, entries)
            self._ordered = True

    def __missing__(self, key: Any) -> Any:
        if not self._complete and isinstance(key, str):
            self._load(key)
            if dict.__contains__(self, key):
                return dict.__getitem__(self, key)
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        if self._complete or not isinstance(key, str):
            return False
        self._load(key)
        return dict.__contains__(self, key)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Any:
        self._fill()
        return dict.__iter__(self)

    def __reversed__(self) -> Any:
        self._fill()
        return dict.__reversed__(self)

    def keys(self) -> Any:
        self._fill()
        return dict.keys(self)

    def values(self) -> Any:
        self._fill()
        return dict.values(self)

    def items(self) -> Any:
        self._fill()
        return dict.items(self)

    def copy(self) -> dict:
        self._fill()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._fill()
        if isinstance(other, PagedDict):
            other._fill()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # as a dict's

    def __repr__(self) -> str:
        self._fill()
        return dict.__repr__(self)


def _restore(count: int, buckets: List[bytes], keys: bytes) -> PagedDict:
    made = PagedDict()
    made._count, made._buckets, made._keys = count, buckets, keys
    made._loaded, made._complete, made._ordered = set(), False, False
    return made
