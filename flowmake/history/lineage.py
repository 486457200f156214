"""`flowmake lineage`: the attempts and inputs behind a file's bytes.

Lineage follows content, not names: starting from a file's current bytes, it
finds the recorded attempt that wrote exactly those bytes, then for each
input hash that attempt read, the attempt that wrote *that* content, and so
on back to source files that no task produced. A file rebuilt since, or an
input edited by hand, shows up as a hash that does not match.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, TextIO, Tuple

from ..errors import UsageError
from ..events import iso_time
from ..layout import in_project
from ..model import AttemptRecord
from ..store.hashing import FileHasher
from ..store.state import State


@dataclass
class LineageNode:
    path: str
    recorded_hash: Optional[str]  # the content this step of the lineage is about
    current_hash: Optional[str]  # what the file holds now (None: missing)
    producer: Optional[AttemptRecord] = None  # None: a source file (no task wrote it)
    inputs: List["LineageNode"] = field(default_factory=list)
    note: Optional[str] = None

    @property
    def matches_disk(self) -> bool:
        return self.recorded_hash is not None and self.recorded_hash == self.current_hash

    def to_json(self) -> dict:
        out: dict = {
            "path": self.path,
            "hash": self.recorded_hash,
            "current_hash": self.current_hash,
            "source": self.producer is None,
        }
        if self.producer is not None:
            p = self.producer
            out["produced_by"] = {
                "task": p.task, "run_id": p.run_id, "attempt": p.attempt, "command": p.command,
                "started": iso_time(p.started), "finished": iso_time(p.finished), "log": p.log,
                "log_hash": p.log_hash, "worker": p.worker,
            }
            if p.restored is not None:  # outputs put back from the shared cache: where they were made
                out["produced_by"]["restored_from"] = dict(p.restored)
            out["inputs"] = [n.to_json() for n in self.inputs]
        if self.note:
            out["note"] = self.note
        return out


def lineage(state: State, hasher: FileHasher, path: str) -> LineageNode:
    """The tree of attempts and inputs behind the current content of `path`."""
    path = _as_recorded(state, hasher, path)
    current = hasher.hash(path)
    memo: Dict[Tuple[str, Optional[str]], LineageNode] = {}
    return _node(state, hasher, path, current, memo, set(), top=True)


def lineage_of_content(state: State, hasher: FileHasher, path: str, content_hash: str) -> LineageNode:
    """The tree behind the bytes `content_hash` of `path` (what a given run wrote), whatever it holds now."""
    memo: Dict[Tuple[str, Optional[str]], LineageNode] = {}
    return _node(state, hasher, path, content_hash, memo, set())


def _node(state: State, hasher: FileHasher, path: str, wanted: Optional[str],
          memo: Dict[Tuple[str, Optional[str]], LineageNode], visiting: Set[Tuple[str, Optional[str]]],
          *, top: bool = False) -> LineageNode:
    key = (path, wanted)
    if key in memo:
        return memo[key]
    current = hasher.hash(path) if not top else wanted
    candidates = state.attempts_writing(output_keys(path))
    producer, recorded, note = _pick(candidates, path, wanted)
    node = LineageNode(path, recorded if recorded is not None else wanted, current, producer, note=note)
    memo[key] = node
    if producer is not None and key not in visiting:
        visiting.add(key)
        for in_path, in_hash in sorted(producer.inputs.items()):
            node.inputs.append(_node(state, hasher, in_path, in_hash, memo, visiting))
        visiting.discard(key)
    return node


def _as_recorded(state: State, hasher: FileHasher, path: str) -> str:
    """`path` normalized as attempts record it: a directory output ends in '/'.

    `parts` and `parts/` both name the directory output parts/, as they do
    as targets; so does a directory on disk that no recorded run wrote.
    """
    norm = posixpath.normpath(path)
    if norm in (".", "/"):
        return norm
    as_dir = norm + "/"
    if path.endswith("/") or os.path.isdir(os.path.join(hasher.root, norm)):
        return as_dir
    if any(as_dir in a.outputs for a in state.attempts_writing([as_dir])):
        return as_dir  # a directory output, gone from disk now
    return norm


def output_keys(path: str) -> List[str]:
    """The path itself and every directory output that could contain it."""
    keys = [path, path.rstrip("/") + "/"]
    parent = posixpath.dirname(path.rstrip("/"))
    # Stops at "" for a relative path and at "/" for an absolute one.
    while parent and parent != "/":
        keys.append(parent + "/")
        parent = posixpath.dirname(parent)
    return keys


def _pick(candidates: List[AttemptRecord], path: str, wanted: Optional[str]
          ) -> Tuple[Optional[AttemptRecord], Optional[str], Optional[str]]:
    if not candidates:
        return None, wanted, None
    for attempt in candidates:  # newest first
        if attempt.outputs.get(path) == wanted and wanted is not None:
            return attempt, wanted, None
    for attempt in candidates:
        container = next((k for k in attempt.outputs if k.endswith("/") and k != path and path.startswith(k)), None)
        if path not in attempt.outputs and container is not None:
            return attempt, wanted, f"inside directory output {container} (recorded as a whole)"
    latest = candidates[0]
    return latest, latest.outputs.get(path), (
        "no recorded run wrote the current content; showing the latest run that wrote this path"
    )


def project_path(root: Path, path: str) -> str:
    """`path` relative to the project root; exit 2 at once for one outside it."""
    rel = in_project(root, path)
    if rel is None:
        raise UsageError(f"{path} is not inside the project (its root is {root})",
                         hint="give a path relative to the project root, e.g. dist/summary.md, or an absolute "
                              "path under the root")
    return rel


def _sources(node) -> List[dict]:
    """The source files (read, never produced) behind a lineage tree, sorted by path."""
    found: Dict[tuple, dict] = {}
    stack = [node]
    seen: set = set()
    while stack:
        n = stack.pop()
        key = (n.path, n.recorded_hash)
        if key in seen:
            continue
        seen.add(key)
        if n.producer is None and n is not node:
            found[key] = {"path": n.path, "hash": n.recorded_hash, "current_hash": n.current_hash}
        stack.extend(n.inputs)
    return sorted(found.values(), key=lambda d: (d["path"], d["hash"] or ""))


def show_lineage(root: Path, path: str, *, as_json: bool, sources_only: bool = False,
                 out: TextIO = sys.stdout) -> int:
    rel = project_path(root, path)
    state = State.open_for_reading(root)
    try:
        node = lineage(state, FileHasher(root, state.stat_cache()), rel)
    finally:
        state.close()
    if node.producer is None and node.current_hash is None:
        raise UsageError(f"{path} does not exist and no recorded run wrote it",
                         hint="give a path relative to the project root, e.g. dist/summary.md")
    if as_json and not sources_only:
        out.write(json.dumps(node.to_json(), indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    def label(n) -> str:
        short = (n.recorded_hash or "?")[:16]
        state_note = ""
        if n.current_hash is None:
            state_note = " [yellow](missing now)[/]"
        elif n.recorded_hash and n.current_hash != n.recorded_hash:
            state_note = f" [yellow](changed since: now {n.current_hash[:16]})[/]"
        head = f"[bold]{escape(n.path)}[/] [dim]{short}[/]{state_note}"
        if n.producer is None:
            return head + " [cyan]source[/]"
        p = n.producer
        text = f"{head}\n[green]← {escape(p.task)}[/] in run {p.run_id} at {iso_time(p.finished)}"
        if p.worker:
            text += f" on {escape(p.worker)}"
        if p.restored is not None:
            text += (f"\n[cyan]restored from cache (produced by run {escape(str(p.restored.get('run')))} "
                     f"on host {escape(str(p.restored.get('host')))})[/]")
        if n.note:
            text += f"\n[dim]{escape(n.note)}[/]"
        return text

    shown: set = set()

    def grow(tree, n) -> None:
        # Each produced file is expanded once; later mentions point back to it,
        # so a deliverable built from many studies stays readable.
        for child in n.inputs:
            key = (child.path, child.recorded_hash)
            if child.producer is not None and key in shown:
                tree.add(label(child).split("\n")[0] + " [dim](inputs shown above)[/]")
                continue
            shown.add(key)
            grow(tree.add(label(child)), child)

    if sources_only:
        if not node.matches_disk and node.producer is not None:
            now = "is missing" if node.current_hash is None else "holds bytes no recorded run wrote"
            print(f"warning: {path} {now}; these are the sources of the latest recorded version "
                  f"({(node.recorded_hash or '?')[:16]})", file=sys.stderr)
        leaves = _sources(node)
        if as_json:
            out.write(json.dumps(leaves, indent=2) + "\n")
            return 0
        for leaf in leaves:
            flag = "" if leaf["current_hash"] == leaf["hash"] else (
                "  (missing now)" if leaf["current_hash"] is None else "  (changed since)")
            out.write(f"{leaf['hash']}  {leaf['path']}{flag}\n")
        return 0
    root = Tree(label(node))
    shown.add((node.path, node.recorded_hash))
    grow(root, node)
    # Not a terminal: never crop a hash or a timestamp to fit 80 columns.
    width = None if out.isatty() else 1000
    console = Console(file=out, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, width=width)
    console.print(root)
    return 0
