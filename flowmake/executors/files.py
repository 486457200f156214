"""The project's files as the coordinator sees them: `LocalFiles`, the file-system seam of local executors.

An executor whose tasks write elsewhere (a cluster's scratch space, an
object store) provides its own (executors/protocol.py, FileSystem); the loop
reaches outputs only through it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence, Tuple

from ..store.hashing import FileHasher

if TYPE_CHECKING:  # names for type checkers only
    from ..store.hashing import StatEntry


class LocalFiles:
    """Files under the project root on this machine's file system."""

    __slots__ = ("root", "_root_dir")

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_dir = str(root)  # os.path on the per-task path: pathlib costs more

    def hasher(self, stat_cache: Mapping[str, StatEntry]) -> FileHasher:
        return FileHasher(self.root, stat_cache)

    def make_parents(self, outputs: Sequence[str]) -> None:
        for out in outputs:
            parent = os.path.dirname(out.rstrip("/"))
            if parent:
                full = os.path.join(self._root_dir, parent)
                if not os.path.isdir(full):  # one stat, where makedirs fails a mkdir first
                    os.makedirs(full, exist_ok=True)

    def missing(self, outputs: Sequence[str]) -> List[str]:
        root = self._root_dir
        return [o for o in outputs
                if not (os.path.isdir if o.endswith("/") else os.path.isfile)(os.path.join(root, o.rstrip("/")))]

    def describe_missing(self, output: str) -> str:
        path = os.path.join(self._root_dir, output.rstrip("/"))
        if not output.endswith("/") and os.path.isdir(path):
            return f"a file {output} (it is a directory: write {output}/)"
        if output.endswith("/") and os.path.isfile(path):
            return f"a directory {output} (it is a file: write {output.rstrip('/')})"
        return output

    def stat_pair(self, path: str) -> Optional[Tuple[int, int]]:
        try:
            st = os.stat(os.path.join(self._root_dir, path))
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)
