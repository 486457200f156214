"""Answers from the audit trail: lineage of a file, and whether the trail is intact.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from ..events import iso_time
from ..model import AttemptRecord
from ..store.hashing import FileHasher, hash_file
from ..store.state import ChainReport, State


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
                "log_hash": p.log_hash,
            }
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


@dataclass(frozen=True)
class LogProblem:
    run_id: str
    task: str
    log: str
    problem: str


def verify(state: State, root: Path) -> Tuple[ChainReport, List[LogProblem]]:
    """Check the hash chain, then each kept log file against its recorded hash."""
    report = state.verify_journal()
    problems: List[LogProblem] = []
    if report.damage is not None:
        return report, problems  # the chain itself could not be read back: that is the finding
    entries = [e for e in state.journal() if report.bad is None or e.seq < report.bad.seq]
    bodies = [(e.kind, json.loads(e.body)) for e in entries]  # all before the first bad record: sound
    pruned: Set[str] = {run for kind, body in bodies if kind == "prune" for run in body["runs"]}
    for kind, body in bodies:
        if kind == "attempt" and body.get("log") and body.get("log_hash"):
            if body["run_id"] in pruned:
                continue
            full = root / body["log"]
            if not full.exists():
                problems.append(LogProblem(body["run_id"], body["task"], body["log"], "log file is missing"))
            elif hash_file(full) != body["log_hash"]:
                problems.append(LogProblem(body["run_id"], body["task"], body["log"],
                                           "log file does not match its recorded hash: edited"))
    return report, problems
