"""A Flowfile's meaning apart from its layout: the hash of its parsed documents.

Two Flowfiles whose TOML parses to the same documents (a comment added, a
blank line, keys re-spaced, a string quoted otherwise) load to the same tasks
but for the lines they are declared at. `digest` hashes one parsed document
(its `repr`: every TOML value's type, value and order, and faster than
pickle, whose output depends on which strings happen to be shared), and
`Flowfile.document_hash` combines those of the Flowfile and of the files it
includes. The load cache (loadcache.py) uses it to keep a cached load across
such an edit (`relocated`: the cached Flowfile with the lines and byte hash of
the text as it is now), and the no-op proof (engine/proof.py) to keep its
snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import FlowfileError
from ..model import Flowfile
from ..store.hashing import hash_bytes, source_hash


def digest(doc: Dict[str, Any]) -> str:
    return hash_bytes(repr(doc).encode("utf-8", "surrogatepass"))


def combined(parts: List[Tuple[str, str]]) -> str:
    """The hash of every part's (name, digest), the main Flowfile first, combined as its bytes' hashes are."""
    return source_hash(parts)


def relocated(flowfile: Flowfile, path: Path) -> Optional[Tuple[Flowfile, Dict[str, Optional[int]]]]:
    """When the Flowfile at `path` (and what it includes) still parses to `flowfile`'s documents:
    `flowfile` with the byte hash of the files as they are now, its schedules at their lines now,
    and each task table's line now (for loadcache.PagedTasks to give its specs). Else None.
    """
    from .flowfile import hand_over, read_toml  # tomli and the loader: only after an edit
    from .locate import LineIndex
    from .problems import Problems

    try:
        doc, text, byte_digest = read_toml(path)  # decoded and parsed exactly as a full load does
        docs, texts = [doc], [text]
        parts, byte_parts = [(path.name, digest(doc))], [(path.name, byte_digest)]
        for rel in flowfile.includes:
            sub, sub_text, sub_digest = read_toml(flowfile.root / rel)
            docs.append(sub)
            texts.append(sub_text)
            parts.append((rel, digest(sub)))
            byte_parts.append((rel, sub_digest))
    except (FlowfileError, OSError):
        return None  # unreadable, or no longer TOML: the full load says why
    if not flowfile.document_hash or combined(parts) != flowfile.document_hash:
        hand_over(path, (doc, text, byte_digest))  # for the full load that follows, which need not parse again
        return None
    # The lines as the loader places them: each task table in the file that declares it (problems.py).
    problems = Problems(path, LineIndex(texts[0]))
    part_of = {rel: problems.add_file(flowfile.root / rel, LineIndex(sub_text))
               for rel, sub_text in zip(flowfile.includes, texts[1:])}
    for table, rel in flowfile.task_files.items():
        problems.own(("tasks", table), part_of[rel])
    if flowfile.includes:
        lines = {table: problems.task_line(table) for one in docs for table in one.get("tasks", {})}
    else:
        lines = problems.index.task_lines(docs[0].get("tasks", {}))
    schedules = {name: spec._replace(line=problems.line(("schedules", name)))
                 for name, spec in flowfile.schedules.items()}
    moved = flowfile._replace(source_hash=combined(byte_parts),
                              schedules=schedules or flowfile.schedules)
    return moved, lines
