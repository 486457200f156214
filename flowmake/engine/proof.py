"""The no-op proof a run plans from and the one it leaves: the snapshot's cone, and the next snapshot.

A run that ends with every task fresh leaves a snapshot (snapshot.py): the
stats of every file its tasks read and wrote. The next run trusts it for
every task none of whose files changed stat since: it plans only the cone
below the changed files, and the fast path (cli/fastpath.py) skips planning
altogether when nothing changed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from .. import __version__
from ..store.hashing import hash_file, source_hash
from ..store.state import state_dir
from . import snapshot as snapshots
from .graph import downstream
from .plan import env_input_hash

if TYPE_CHECKING:  # names for type checkers only
    from ..model import Flowfile, TaskSpec
    from ..store.hashing import FileHasher, StatEntry
    from .graph import Graph

    Cone = Tuple[snapshots.Snapshot, Set[str]]  # the snapshot planned from, and the tasks it left to plan


def proven_fresh(flowfile: Flowfile, graph: Graph, selection: Sequence[str], *, state_identity: str,
                 target_names: Sequence[str], environ: Mapping[str, str],
                 prescan: Optional[snapshots.Prescan] = None) -> Tuple[Dict[str, str], Optional[Cone]]:
    """Selected tasks that the last run's snapshot still proves fresh, with their groups; and its cone.

    Its proof holds for every task none of whose files has changed stat
    since or is a suspect, and that no task with such a file feeds:
    planning need only look at the cone below the changed files (one edit
    in 10,000 tasks plans a handful, not 10,000), and no other task's
    spec need even be read (loadcache.PagedTasks). Forced runs take no proof.
    """
    directory = state_dir(flowfile.root)
    snap = prescan.snapshot_if_current(directory) if prescan is not None else None
    if snap is None:
        snap = snapshots.read(directory)
    if (snap is None or snap.state_identity != state_identity
            or (snap.flowfile_hash != flowfile.source_hash
                and (not flowfile.document_hash or snap.flowfile_document != flowfile.document_hash))
            or not snapshots.applies(snap, version=__version__, flowfile=str(flowfile.path),
                                     targets=target_names, environ=environ)
            or {task[0] for task in snap.tasks} != set(selection)):
        return {}, None
    root_fd = os.open(flowfile.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        changed = prescan.changed(snap.files, root_fd) if prescan is not None else None
        if changed is None:
            changed = snapshots.changed_files(snap.files, root_fd)
    finally:
        os.close(root_fd)
    changed.update(snap.suspects)
    # A snapshot is only ever made of plain paths (no globs, no directory
    # outputs), so the tasks a file touches are its declared readers and producer.
    readers, producers = graph.readers, graph.producers
    touched = {name for path in changed for name in readers.get(path, ())}
    touched.update(producers[path] for path in changed if path in producers)
    touched.intersection_update(selection)
    cone = downstream(graph, touched).union(touched)
    return {name: group for name, group, *_ in snap.tasks if name not in cone}, (snap, cone)


def leave_snapshot(flowfile: Flowfile, selection: Sequence[str], *, hasher: FileHasher, state_identity: str,
                   task_rows: Callable[[], Sequence[Tuple[str, str, Tuple[str, ...]]]], cone: Optional[Cone], forced: bool,
                   environ: Mapping[str, str], target_names: Sequence[str], roots: Sequence[str],
                   notices: Sequence[str]) -> None:
    """Every task is fresh now: leave the proof that lets the next run skip planning.

    `task_rows`: (name, group, deps) of the selected tasks in the order they
    finished, asked for only when there is no `cone` (what proven_fresh
    planned from, whose rows hold as they are).
    """
    tasks = flowfile.tasks
    if cone is not None:
        # Planned from the previous snapshot, which this Flowfile and selection
        # were allowed: outside the cone every file kept its stat and its record,
        # and its task rows and env_inputs hashes (checked against this
        # environment) hold as they are.
        previous, planned = cone
        env_inputs, rows = dict(previous.env_inputs), tuple(previous.tasks)
        cone_files = [p for name in selection if name in planned
                      for p in (*tasks[name].inputs, *tasks[name].outputs)]
        collected = collect_files(cone_files, hasher.entry)
        if collected is not None:
            # The cone's files first: in an edit-run-edit-run loop they are the
            # ones that change next, and the no-op path stops at the first change.
            collected = (collected[0].plus(previous.files.without(set(cone_files))), collected[1])
    else:
        specs = [tasks[name] for name in selection]
        env_inputs = {n: env_input_hash(n, environ) for spec in specs for n in spec.env_inputs}
        rows = tuple(task_rows())
        if not snapshot_allowed(specs, forced=forced, uses_globs=flowfile.uses_globs):
            return
        if flowfile.has_secrets:
            return  # its hook commands would be copied under .flowmake, where no secret may be
        collected = collect_files((p for spec in specs for p in (*spec.inputs, *spec.outputs)),
                                            hasher.entry)
    path = str(flowfile.path)
    ff_stat = snapshots.stat_key(path)
    if collected is None or ff_stat is None or not hasher.clock_is_past(path):
        return  # a file never hashed, or a Flowfile too fresh to vouch for by its stat
    includes = snapshots.include_stats(str(flowfile.root / rel) for rel in flowfile.includes)
    if includes is None or not all(hasher.clock_is_past(include) for include, _ in includes):
        return  # an included file gone, or too fresh to vouch for by its stat
    # Read again after the clock check: a write after it would change the stat.
    parts = [(flowfile.path.name, hash_file(flowfile.path))]
    parts += [(rel, hash_file(flowfile.root / rel)) for rel in flowfile.includes]
    if source_hash(parts) != flowfile.source_hash:
        return  # edited while we ran
    hooks = flowfile.hooks
    snapshots.write(state_dir(flowfile.root), snapshots.Snapshot(
        flowfile=path, flowfile_stat=ff_stat, flowfile_hash=flowfile.source_hash, targets=tuple(target_names),
        env_inputs=env_inputs, flow_name=flowfile.name, jobs=flowfile.jobs, roots=tuple(roots),
        tasks=rows, files=collected[0], suspects=collected[1],
        hooks=(hooks.on_failure, hooks.on_success, hooks.webhook), shell=flowfile.shell, version=__version__,
        state_identity=state_identity, includes=includes, notices=tuple(notices),
        flowfile_document=flowfile.document_hash,
    ))


# -- what a snapshot may hold (the module docstring of snapshot.py says why) ---


def collect_files(paths: Iterable[str], entry_of: Callable[[str], Optional[StatEntry]]
                  ) -> Optional[Tuple[snapshots.Files, Tuple[str, ...]]]:
    """The recorded stats of these files and the suspects among them; None if any was never hashed."""
    seen: Set[str] = set()
    trusted: List[str] = []
    stats: List[int] = []
    inodes: List[int] = []
    suspects: List[str] = []
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        entry = entry_of(path)
        if entry is None:
            return None
        if not entry.trusted:
            suspects.append(path)
            continue
        trusted.append(path)
        stats += (entry.size, entry.mtime_ns, entry.ctime_ns)
        inodes.append(entry.inode)
    return snapshots.Files(trusted, stats, inodes), tuple(suspects)


def snapshot_allowed(specs: Sequence[TaskSpec], *, forced: bool, uses_globs: bool) -> bool:
    """Whether stats alone can prove these tasks fresh (see the module docstring)."""
    if forced or uses_globs:
        return False
    for spec in specs:
        if spec.always or spec.wait_for or (not spec.inputs and not spec.outputs and spec.command):
            return False
        if any(p.endswith("/") for p in spec.inputs) or any(p.endswith("/") for p in spec.outputs):
            return False
    return True
