"""The no-op proof a run plans from and the one it leaves: the snapshot's cone, and the next snapshot.

A run that ends with every task fresh leaves a snapshot (snapshot.py): the
stats of every file its tasks read and wrote. The next run trusts it for
every task none of whose files changed stat since: it plans only the cone
below the changed files, and the fast path (cli/fastpath.py) skips planning
altogether when nothing changed.

The snapshot also keeps each task's spec digest (`spec_digests`: all of its
spec that its decision depends on besides its trace and its files' contents,
and its dependencies). After an edit of the Flowfile that changes what it
means, the proof still holds for a task whose digest is the same and none of
whose files changed: only the tasks specified otherwise, those the snapshot
does not know (added, renamed) and the cone below them are planned. Global
settings reach the digests through the specs they resolve into (the flow's
shell, env and env_inputs are each task's own after loading); the env_inputs'
values, the flowmake version and the state database are checked for all.
"""

from __future__ import annotations

import os
from operator import itemgetter
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from blake3 import blake3

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


class Cone(NamedTuple):
    """What proven_fresh planned from: the snapshot, and the tasks it left to plan."""

    snapshot: snapshots.Snapshot
    planned: Set[str]
    # Each selected task's spec digest now, when the Flowfile's documents are not the snapshot's
    # (else the snapshot's hold as they are); and whether its rows are the selection's, as they are.
    specs: Optional[Dict[str, bytes]]
    same_rows: bool


def proven_fresh(flowfile: Flowfile, graph: Graph, selection: Sequence[str], *, state_identity: str,
                 target_names: Sequence[str], environ: Mapping[str, str],
                 prescan: Optional[snapshots.Prescan] = None, any_targets: bool = False
                 ) -> Tuple[Dict[str, str], Optional[Cone]]:
    """Selected tasks that the last run's snapshot still proves fresh, with their groups; and its cone.

    Its proof holds for every task it knows with the same spec digest, none
    of whose files has changed stat since or is a suspect, and that no other
    task feeds: planning need only look at the cone below the changed files
    and specs (one edit in 10,000 tasks plans a handful), and while the
    Flowfile's documents are the same no other task's spec need even be read
    (loadcache.PagedTasks). Forced runs take no proof. `any_targets`
    (status): the snapshot may be of a run with other targets, whose
    selection, deps-closed as any, vouches for the tasks it holds.
    """
    cone = snapshot_cone(flowfile, graph, selection, state_identity=state_identity, target_names=target_names,
                         environ=environ, prescan=prescan, any_targets=any_targets)
    return ({} if cone is None else proven_of(cone, selection)), cone


def proven_of(cone: Cone, selection: Sequence[str]) -> Dict[str, str]:
    """The selected tasks the snapshot holds outside the cone, with their groups: proven fresh."""
    planned, selected = cone.planned, set(selection)
    return {name: group for name, group, *_ in cone.snapshot.tasks if name not in planned and name in selected}


def snapshot_cone(flowfile: Flowfile, graph: Graph, selection: Sequence[str], *, state_identity: str,
                  target_names: Sequence[str], environ: Mapping[str, str],
                  prescan: Optional[snapshots.Prescan] = None, any_targets: bool = False) -> Optional[Cone]:
    """proven_fresh's cone alone, without the map of the proven tasks (a run of the same rows
    plans from the snapshot's rows instead: Build._plan_cone); None when the snapshot proves nothing."""
    directory = state_dir(flowfile.root)
    snap = prescan.snapshot_if_current(directory) if prescan is not None else None
    if snap is None:
        snap = snapshots.read(directory)
    if (snap is None or snap.state_identity != state_identity
            or not snapshots.applies(snap, version=__version__, flowfile=str(flowfile.path),
                                     targets=snap.targets if any_targets else target_names, environ=environ)):
        return None
    same_document = (snap.flowfile_hash == flowfile.source_hash
                     or (bool(flowfile.document_hash) and snap.flowfile_document == flowfile.document_hash))
    unknown, specs = _unknown(flowfile, graph, selection, snap, same_document)
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
    touched.update(unknown)
    selected = set(selection)
    touched.intersection_update(selected)
    cone = downstream(graph, touched).union(touched)
    # The tasks it holds are the selection (none unknown and as many): then its rows are the selection's.
    same_rows = specs is None and not unknown and len(selected) == len(snap.tasks)
    return Cone(snap, cone, specs, same_rows)


def _unknown(flowfile: Flowfile, graph: Graph, selection: Sequence[str], snap: snapshots.Snapshot,
             same_document: bool) -> Tuple[Set[str], Optional[Dict[str, bytes]]]:
    """Selected tasks the snapshot cannot vouch for whatever their files say: tasks it does not hold, or
    (when the Flowfile's documents changed) holds with another spec digest; and the digests now, if computed."""
    rows = snap.tasks
    if same_document:
        known = set(map(itemgetter(0), rows))  # C loops: at 100,000 tasks a comprehension took ~20 ms
        return (set() if known.issuperset(selection) else set(selection).difference(known)), None
    size, old = snapshots.SPEC_DIGEST, snap.specs
    before = {row[0]: old[size * i:size * i + size] for i, row in enumerate(rows)}
    now = spec_digests(flowfile.tasks, graph.deps, selection)
    return {name for name, digest in now.items() if before.get(name) != digest}, now


def spec_digests(tasks: Mapping[str, TaskSpec], deps: Mapping[str, Sequence[str]],
                 names: Iterable[str]) -> Dict[str, bytes]:
    """Each task's spec digest: what its decision (plan.decide, on what preview.observe sees) and its
    row in the plan depend on besides its trace and its files' contents.

    The command with its shell (the command hash), env and env_inputs (the
    env hashes), the inputs and outputs as declared (what is hashed, and
    whether it has files at all), `always` and `wait_for` (whether it runs
    anyway), its secrets (what a snapshot may hold), its group and its
    dependencies (an edge added or removed, a producer renamed). Its help,
    line, retries, timeout and the like change nothing a fresh task shows.
    """
    out = {}
    size = snapshots.SPEC_DIGEST
    for name in names:
        s = tasks[name]
        key = (s.name, s.group, s.command, s.shell, s.inputs, s.outputs, s.env, s.env_inputs, s.always,
               s.wait_for, s.secrets, tuple(deps[name]))
        # repr: unambiguous for these strings, tuples, bools and None, and ~2 us a task.
        out[name] = blake3(repr(key).encode("utf-8", "surrogatepass")).digest(size)
    return out


def leave_snapshot(flowfile: Flowfile, graph: Graph, selection: Sequence[str], *, hasher: FileHasher,
                   state_identity: str, task_rows: Callable[[], Sequence[Tuple[str, str, Tuple[str, ...]]]],
                   cone: Optional[Cone], forced: bool, environ: Mapping[str, str], target_names: Sequence[str],
                   roots: Sequence[str], notices: Sequence[str]) -> None:
    """Every task is fresh now: leave the proof that lets the next run skip planning.

    `task_rows`: (name, group, deps) of the selected tasks in the order they
    finished, asked for unless the `cone` (what proven_fresh planned from)
    has rows that hold as they are.
    """
    tasks = flowfile.tasks
    if cone is not None and cone.same_rows:
        # Planned from the previous snapshot of these documents and selection:
        # outside the cone every file kept its stat and its record, and its
        # task rows, spec digests and env_inputs hashes (checked against this
        # environment) hold as they are.
        previous, planned = cone.snapshot, cone.planned
        env_inputs, rows, specs = dict(previous.env_inputs), tuple(previous.tasks), previous.specs
        rows_data = previous.rows_data  # written again as read
        cone_files = [p for name in filter(planned.__contains__, selection)  # C loop over the selection
                      for p in (*tasks[name].inputs, *tasks[name].outputs)]
        collected = collect_files(cone_files, hasher.entry)
        if collected is not None:
            # The cone's files first: in an edit-run-edit-run loop they are the
            # ones that change next, and the no-op path stops at the first change.
            collected = (collected[0].plus(previous.files.without(set(cone_files))), collected[1])
    else:
        chosen = [tasks[name] for name in selection]
        if not snapshot_allowed(chosen, forced=forced, uses_globs=flowfile.uses_globs):
            return
        if flowfile.has_secrets:
            return  # its hook commands would be copied under .flowmake, where no secret may be
        env_inputs = {n: env_input_hash(n, environ) for spec in chosen for n in spec.env_inputs}
        rows, rows_data = tuple(task_rows()), b""
        digests = cone.specs if cone is not None and cone.specs is not None else None
        if digests is None:
            digests = spec_digests(tasks, graph.deps, selection)
        specs = b"".join(digests[row[0]] for row in rows)
        collected = (_files_of(chosen, hasher, graph, cone) if cone is not None
                     else collect_files((p for spec in chosen for p in (*spec.inputs, *spec.outputs)), hasher.entry))
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
        flowfile_document=flowfile.document_hash, specs=specs, rows_data=rows_data,
    ))


def _files_of(chosen: Sequence[TaskSpec], hasher: FileHasher, graph: Graph, cone: Cone
              ) -> Optional[Tuple[snapshots.Files, Tuple[str, ...]]]:
    """The stats of the chosen tasks' files, after a cone planned across an edit of the Flowfile.

    The planned tasks' files from their records now, first (see above); the
    others' as the previous snapshot has them (they kept their stats), less
    the files no selected task reads or writes any more (a task removed):
    one of those changing would otherwise keep the no-op path off for good.
    """
    planned = cone.planned
    cone_files = [p for spec in chosen if spec.name in planned for p in (*spec.inputs, *spec.outputs)]
    collected = collect_files(cone_files, hasher.entry)
    if collected is None:
        return None
    selected = {spec.name for spec in chosen}
    readers, producers = graph.readers, graph.producers
    previous = cone.snapshot.files
    drop = set(cone_files)
    drop.update(path for path in previous.paths
                if producers.get(path) not in selected and not any(r in selected for r in readers.get(path, ())))
    return collected[0].plus(previous.without(drop)), collected[1]


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
