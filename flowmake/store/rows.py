"""The traces and the stat cache as maps whose rows are read when looked up.

A no-op or a small change looks up a few hundred of 30,000 rows, and a
fresh task's trace is compared by its fingerprint alone: reading every row,
or decoding every trace's JSON, would cost more than the lookups.
"""

from __future__ import annotations

import json
from collections import abc

from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Any, Callable, Dict, Iterator, Optional


class Rows(abc.Mapping):
    """A table's rows keyed by `key`, read as they are looked up, made into objects on each lookup.

    A run over 10,000 tasks of which a few changed plans only the cone below
    the change (engine/proof.py) and looks up a few hundred of 30,000 rows: one
    query each (~5 us) instead of reading them all (~30 ms). Past
    `_BULK_AFTER` distinct keys, or to iterate, the whole table is read once.
    Each row is read once, so a lookup returns the row as it first was.
    """

    _BULK_AFTER = 2000

    __slots__ = ("_fetch", "_select", "_one", "_make", "_rows", "_complete")

    def __init__(self, fetch: Callable[..., Any], select: str, key: str, make: Callable[[tuple], Any], *,
                 empty: bool = False) -> None:
        self._fetch = fetch  # State._fetch: a damaged page found here is handled as in State's methods
        self._select = select
        self._one = f"{select} WHERE {key} = ?"
        self._make = make
        self._rows: Dict[str, Optional[tuple]] = {}  # None: no such row
        # An empty table (a first run) answers every lookup without a query.
        self._complete = empty

    def _row(self, key: str) -> Optional[tuple]:
        rows = self._rows
        if key in rows or self._complete:
            return rows.get(key)
        if len(rows) >= self._BULK_AFTER:
            self._read_all()
            return self._rows.get(key)
        row = rows[key] = self._fetch(self._one, (key,), one=True)
        return row

    def _read_all(self) -> None:
        if not self._complete:
            known = self._rows
            self._rows = {r[0]: r for r in self._fetch(self._select)}
            self._rows.update(known)  # keys already looked up stay as they were
            self._complete = True

    def __getitem__(self, key: str) -> Any:
        row = self._row(key)
        if row is None:
            raise KeyError(key)
        return self._make(row)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        row = self._row(key)
        return default if row is None else self._make(row)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._row(key) is not None

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        return (k for k, r in self._rows.items() if r is not None)

    def __len__(self) -> int:
        self._read_all()
        return sum(1 for r in self._rows.values() if r is not None)


class LazyJSON(abc.Mapping):
    """A JSON object decoded on first use: a fresh task's env and inputs are
    never looked at (its fingerprint matched), so most are never decoded."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: Optional[dict] = None

    def _get(self) -> dict:
        if self._value is None:
            self._value = json.loads(self._text)
        return self._value

    def __getitem__(self, key: str) -> object:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other: object) -> bool:
        return self._get() == (dict(other) if isinstance(other, abc.Mapping) else other)

    def __repr__(self) -> str:
        return repr(self._get())

