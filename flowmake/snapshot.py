"""The no-op proof: a compact record that lets `flowmake run` say "nothing to do"
from stat calls alone, without parsing the Flowfile or planning.

A run in which every selected task was fresh writes it: the Flowfile's hash,
the targets as given, the hashes of the env_inputs' values, and the size,
mtime and inode of every input and output, each taken from a *trusted* stat
cache entry (one hashed well after its last modification; see hashing.py).
If, on the next run, the Flowfile and every one of those stats are the same,
then every content hash and so every fingerprint is the same, and the full
planner would find every task fresh again.

Anything it cannot vouch for by stats alone keeps it from being written:
globs (a new file could match), directory inputs or outputs, `always`
tasks, tasks with no files (they always run), sensors, forced runs. Any
other run deletes it before it starts work, so a crash mid-run never leaves
one behind. Stored with `marshal`: the fastest format the standard library
reads, and the file is flowmake's own cache, versioned and rebuilt at will.
"""

from __future__ import annotations

import marshal
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

if TYPE_CHECKING:  # the fast path must not pay for importing these
    from .hashing import StatEntry
    from .model import TaskSpec

SNAPSHOT_NAME = "noop.snapshot"
_FORMAT = 3


@dataclass(frozen=True)
class Snapshot:
    flowfile: str  # absolute path
    flowfile_stat: Tuple[int, int, int]
    flowfile_hash: str
    targets: Tuple[str, ...]  # as given on the command line
    env_inputs: Mapping[str, str]  # name -> hash of the value
    flow_name: str
    jobs: Optional[int]
    roots: Tuple[str, ...]
    tasks: Tuple[Tuple[str, str, Tuple[str, ...]], ...]  # (name, group, deps) in order
    files: Tuple[Tuple[str, int, int, int], ...]  # (path, size, mtime_ns, inode)
    hooks: Tuple[Optional[str], Optional[str], Optional[str]]  # on_failure, on_success, webhook
    shell: Tuple[str, ...]  # [flow] shell, which the hooks run with
    version: str
    state_identity: str  # the state database it was proven against (State.identity)


def path_in(state_dir: Path) -> Path:
    return state_dir / SNAPSHOT_NAME


def remove(state_dir: Path) -> None:
    try:
        os.unlink(path_in(state_dir))
    except FileNotFoundError:
        pass


def write(state_dir: Path, snap: Snapshot) -> None:
    data = (
        _FORMAT, snap.version, snap.flowfile, snap.flowfile_stat, snap.flowfile_hash, snap.targets,
        dict(snap.env_inputs), snap.flow_name, snap.jobs, snap.roots, snap.tasks, snap.files, snap.hooks, snap.shell,
        snap.state_identity,
    )
    target = path_in(state_dir)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        marshal.dump(data, f)
    os.replace(tmp, target)  # readers see the old file or the new one, never half of one


def read(state_dir: Path) -> Optional[Snapshot]:
    try:
        with open(path_in(state_dir), "rb") as f:
            data = marshal.loads(f.read())  # several times faster than marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(data, tuple) or len(data) != 15 or data[0] != _FORMAT:
        return None
    (_, version, flowfile, ff_stat, ff_hash, targets, env_inputs, name, jobs, roots, tasks, files, hooks,
     shell, identity) = data
    return Snapshot(flowfile, ff_stat, ff_hash, targets, env_inputs, name, jobs, roots, tasks, files, hooks,
                    shell, version, identity)


def applies(snap: Snapshot, *, version: str, flowfile: str, targets: Sequence[str],
            environ: Mapping[str, str]) -> bool:
    """Whether the snapshot was made for this flowmake, Flowfile, targets and env_inputs values.

    The caller still checks the Flowfile's content (by stat or by hash) and the
    state database's identity.
    """
    if snap.version != version or snap.flowfile != flowfile or tuple(snap.targets) != tuple(targets):
        return False
    if snap.env_inputs:
        from .plan import env_input_hash

        return all(env_input_hash(name, environ) == digest for name, digest in snap.env_inputs.items())
    return True


def files_unchanged(files: Iterable[Tuple[str, int, int, int]], root_fd: int) -> bool:
    """True when every file (relative to `root_fd`) still has the recorded size, mtime and inode."""
    stat = os.stat
    try:
        for path, size, mtime_ns, inode in files:
            st = stat(path, dir_fd=root_fd)
            if st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != inode:
                return False
    except OSError:
        return False
    return True


def changed_files(files: Iterable[Tuple[str, int, int, int]], root_fd: int) -> Set[str]:
    """The files (relative to `root_fd`) whose size, mtime or inode differ from the record, or that are gone."""
    stat = os.stat
    changed: Set[str] = set()
    for path, size, mtime_ns, inode in files:
        try:
            st = stat(path, dir_fd=root_fd)
        except OSError:
            changed.add(path)
            continue
        if st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != inode:
            changed.add(path)
    return changed


def stat_triple(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def collect_files(paths: Iterable[str], entries: Mapping[str, "StatEntry"]) -> Optional[List[Tuple[str, int, int, int]]]:
    """The recorded stats of these files, or None if any entry is missing or not trusted yet."""
    out: Dict[str, Tuple[str, int, int, int]] = {}
    for path in paths:
        if path in out:
            continue
        entry = entries.get(path)
        if entry is None or not entry.trusted:
            return None
        out[path] = (path, entry.size, entry.mtime_ns, entry.inode)
    return list(out.values())


def snapshot_allowed(specs: Sequence["TaskSpec"], *, forced: bool, uses_globs: bool) -> bool:
    """Whether stats alone can prove these tasks fresh (see the module docstring)."""
    if forced or uses_globs:
        return False
    for spec in specs:
        if spec.always or spec.wait_for or (not spec.inputs and not spec.outputs and spec.command):
            return False
        if any(p.endswith("/") for p in spec.inputs) or any(p.endswith("/") for p in spec.outputs):
            return False
    return True
