"""The lineage of a run's final outputs in the report document: a flat table of files.

collect.py puts it in the document (`flatten_lineage`); both renderers ask
it for the source files behind an output (`sources_of`).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

from ..events import iso_time


def flatten_lineage(nodes: Sequence[object]) -> dict:
    """Lineage trees (history.lineage.LineageNode) as a table of files, each listed once.

    A deliverable built from many studies shares its sources; nested JSON
    would repeat them once per path to them.
    """
    files: Dict[str, dict] = {}
    roots: List[str] = []

    def key_of(n) -> str:
        return f"{n.path}@{(n.recorded_hash or 'missing')[:16]}"

    def visit(n) -> str:
        key = key_of(n)
        if key in files:
            return key
        entry: dict = {"key": key, "path": n.path, "hash": n.recorded_hash, "current_hash": n.current_hash,
                       "source": n.producer is None, "note": n.note, "inputs": []}
        files[key] = entry
        if n.producer is not None:
            p = n.producer
            entry["produced_by"] = {"task": p.task, "run_id": p.run_id, "attempt": p.attempt,
                                    "finished": iso_time(p.finished)}
            entry["inputs"] = [visit(child) for child in n.inputs]
        return key

    for n in nodes:
        roots.append(visit(n))
    return {"outputs": roots, "files": list(files.values())}


def sources_of(files: Mapping[str, Mapping], key: str) -> List[Mapping]:
    """The source files (read, never produced) behind `key`, sorted by path."""
    seen: set = set()
    found: Dict[str, Mapping] = {}
    stack = [key]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        f = files[k]
        if f["source"] and k != key:
            found[k] = f
        stack.extend(f["inputs"])
    return sorted(found.values(), key=lambda f: (f["path"], f["hash"] or ""))
