"""What a cache entry is keyed by: the task's fingerprint and the outputs it declares.

The fingerprint (engine/plan.py) is the hash of the command (with its
shell), the task's env and env_inputs, and every input's path and content
hash: what a trace is checked against. The declared outputs join it here,
since an entry must hold every one of them to be restored. The task's name
and project are not part of the key: two tasks anywhere that run the same
command on the same bytes share an entry.
"""

from __future__ import annotations

from typing import Sequence

from ..store.hashing import hash_text


# Bumped whenever what goes into a key or an entry changes: old entries are then never matched.
KEY_FORMAT = "flowmake-cache-1"


def entry_key(fingerprint: str, outputs: Sequence[str]) -> str:
    return hash_text(KEY_FORMAT + "\n" + fingerprint + "\n" + "\n".join(outputs))
