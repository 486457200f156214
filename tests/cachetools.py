"""Helpers of the cache tests: a project's outputs stored and restored through a real session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from flowmake.cache.entry import Produced
from flowmake.cache.key import entry_key
from flowmake.cache.session import CacheSession, session_for
from flowmake.store.hashing import FileHasher


def produced(task: str = "t", run: str = "R1") -> Produced:
    return Produced(run=run, host="host-a", user="me", at=1.0, task=task, project="p", version="test")


def open_session(url: str, warnings: Optional[List[str]] = None, **kw) -> CacheSession:
    sink = warnings if warnings is not None else []
    return session_for(url, base=os.getcwd(), warn=sink.append, **kw)


def output_hashes(root: Path, outputs: Sequence[str]) -> Dict[str, Optional[str]]:
    hasher = FileHasher(root, {})
    return {o: hasher.hash(o) for o in outputs}


def store_outputs(session: CacheSession, root: Path, outputs: Sequence[str], fingerprint: str = "fp",
                  task: str = "t") -> str:
    key = entry_key(fingerprint, outputs)
    hasher = FileHasher(root, {})
    assert session.store(key, str(root), {o: hasher.hash(o) for o in outputs}, hasher.hash, produced(task))
    return key
