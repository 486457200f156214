"""Which declared outputs lead out of the project through a symbolic link, for `flowmake check`.

`removal.way_out` answers for one path with an lstat per step of it; asked
for 100,000 outputs in one directory that is 200,000 lstat calls, almost all
of them finding the same plain directory and a plain file. Here each
directory on the way is lstat'ed once, and the outputs themselves are read
from one listing of their directory (whose entries say whether they are
links without a stat); only an output with a link somewhere on its way is
handed to `way_out`, whose answer this gives for every output.
"""

from __future__ import annotations

import os
import stat

from typing import Dict, Iterable, Iterator, Optional, Set, Tuple

from ..removal import way_out

_PLAIN, _LINK, _GONE = 0, 1, 2  # a directory on the way: a real one, a link, missing or not a directory


def outputs_leaving(base: str, outputs: Iterable[Tuple[str, str]]) -> Iterator[Tuple[str, str, Tuple[str, str]]]:
    """(task, output, (link, target)) for each (task, output) whose way from `base` leaves it: way_out(itself=True)."""
    dirs: Dict[str, int] = {}
    links_in: Dict[str, Optional[Set[str]]] = {}  # directory -> names of the links in it (None: unlistable)
    for task, output in outputs:
        if _may_leave(base, output, dirs, links_in):
            leak = way_out(base, output, itself=True)
            if leak is not None:
                yield task, output, leak


def _may_leave(base: str, rel: str, dirs: Dict[str, int], links_in: Dict[str, Optional[Set[str]]]) -> bool:
    """False when way_out's own walk would find no link before its end or a missing step; else True (ask it)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts or os.path.isabs(rel) or not parts:
        return True
    here = ""
    for part in parts[:-1]:
        here = f"{here}{part}/"
        kind = dirs.get(here)
        if kind is None:
            kind = dirs[here] = _kind(os.path.join(base, here[:-1]))  # no '/': lstat would follow a link
        if kind == _GONE:
            return False  # way_out stops at the first missing step: nothing beyond it
        if kind == _LINK:
            return True
    links = links_in.get(here, ())
    if links == ():
        links = links_in[here] = _links(os.path.join(base, here))
    return links is None or parts[-1] in links


def _kind(path: str) -> int:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return _GONE
    return _LINK if stat.S_ISLNK(mode) else _PLAIN if stat.S_ISDIR(mode) else _GONE


def _links(directory: str) -> Optional[Set[str]]:
    try:
        with os.scandir(directory) as entries:
            return {entry.name for entry in entries if entry.is_symlink()}
    except OSError:
        return None  # let way_out look for itself
