"""The no-op proof: a compact record that lets `flowmake run` say "nothing to do"
from stat calls alone, without parsing the Flowfile or planning.

A successful run writes it: the Flowfile's hash and stat key (and the stat
keys of the files it includes, checked as the Flowfile's own), the targets
as given, the hashes of the env_inputs' values, and the stat key (size,
mtime, ctime, inode: the ctime because no tool can set it back, see
hashing.py) of every input and output, each taken from the stat cache entry
its content hash was recorded with. An entry is *trusted* when it was hashed
well after the file's last modification (see hashing.py); files whose entry is not trusted
yet (written by this very run, say) are listed as *suspects*. If, on the next
run, the Flowfile and every trusted stat are the same and there is no
suspect, then every content hash and so every fingerprint is the same, and
the full planner would find every task fresh again: the no-op fast path
(fastpath.py) answers from this alone.

A run that cannot take that path still uses it (proof.py): a task none of
whose files changed stat or is a suspect, and that no such task feeds, is
proven fresh by the same argument, so only the cone below the changed files
is planned (across a Flowfile edit too, by each task's spec digest): cheap edit-run-edit-run on a big graph.

Anything it cannot vouch for by stats alone keeps it from being written:
globs (a new file could match), directory inputs or outputs, `always`
tasks, tasks with no files (they always run), sensors, forced runs, a task
that succeeded without a trace. Any other run deletes it before it starts
work, so a crash mid-run never leaves one behind. Stored with `marshal`, the
stats as flat integer arrays: the fastest format the standard library reads,
and the file is flowmake's own cache, versioned and rebuilt at will.
"""

from __future__ import annotations

import marshal
import os
from array import array
from itertools import chain, compress
from operator import not_

from ..records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Iterable, Mapping, Optional, Sequence, Set, Tuple

    from .prescan import Prescan as Prescan  # where it was: the scan a forked child shares


SNAPSHOT_NAME = "noop.snapshot"
# Set to anything but "" or "0": no no-op fast path, no snapshot (read or left) and no load
# cache, so every run takes the full path; CI runs the CLI tests both ways (.ci/run).
NO_SHORTCUTS = "FLOWMAKE_NO_SHORTCUTS"


def shortcuts_off(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(NO_SHORTCUTS, "") not in ("", "0")

_FORMAT = 9  # 5: ctimes in the stats; 6: the warnings a no-op repeats; 7: the documents' hash; 8: spec digests;
# 9: the task rows marshalled apart (Snapshot.rows_data)
_PER = 3  # numbers per path in Files.stats
SPEC_DIGEST = 16  # bytes per task in Snapshot.specs


class Files(NamedTuple):
    """Recorded stats of many files, kept flat: 20,000 tuples cost more to load than to stat."""

    paths: Sequence[str]
    stats: Sequence[int]  # size, mtime_ns, ctime_ns of each path in turn (signed 64-bit)
    inodes: Sequence[int]  # unsigned 64-bit

    def without(self, leave_out: Set[str]) -> "Files":
        # C loops: a comprehension over 200,000 paths took ~25 ms of an edit's run.
        drop = list(compress(range(len(self.paths)), map(leave_out.__contains__, self.paths)))
        paths, stats, inodes = list(self.paths), array("q", self.stats), array("Q", self.inodes)
        if len(drop) <= 64:
            # The usual edit leaves out a few: delete those in place (C copies)
            # rather than rebuild 20,000 entries in Python.
            for i in reversed(drop):
                del paths[i], stats[_PER * i:_PER * i + _PER], inodes[i]
            return Files(paths, stats, inodes)
        # Many (a cone of a hundred tasks): kept by C loops (compress), the stats three to a path.
        kept = list(map(not_, map(leave_out.__contains__, paths)))
        return Files(list(compress(paths, kept)),
                     array("q", compress(stats, chain.from_iterable(zip(kept, kept, kept)))),
                     array("Q", compress(inodes, kept)))

    def part(self, start: int, stop: int) -> "Files":
        """Entries start..stop-1."""
        return Files(self.paths[start:stop], self.stats[_PER * start:_PER * stop], self.inodes[start:stop])

    def plus(self, other: "Files") -> "Files":
        return Files([*self.paths, *other.paths], array("q", self.stats) + array("q", other.stats),
                     array("Q", self.inodes) + array("Q", other.inodes))


class Snapshot(NamedTuple):
    flowfile: str  # absolute path
    flowfile_stat: Tuple[int, int, int, int]  # stat_key
    flowfile_hash: str
    targets: Tuple[str, ...]  # as given on the command line
    env_inputs: Mapping[str, str]  # name -> hash of the value
    flow_name: str
    jobs: Optional[int]
    roots: Tuple[str, ...]
    tasks: Tuple[Tuple[str, str, Tuple[str, ...]], ...]  # (name, group, deps) in order
    files: Files  # every input and output with a trusted stat cache entry
    suspects: Tuple[str, ...]  # inputs and outputs whose entry is not trusted yet
    hooks: Tuple[Optional[str], Optional[str], Optional[str]]  # on_failure, on_success, webhook
    shell: Tuple[str, ...]  # [flow] shell, which the hooks run with
    version: str
    state_identity: str  # the state database it was proven against (State.identity)
    # The files the Flowfile includes (absolute paths) with their stat keys: an edit of one is an edit of the Flowfile.
    includes: Tuple[Tuple[str, Tuple[int, int, int, int]], ...] = ()
    notices: Tuple[str, ...] = ()  # warnings about the Flowfile the run gave, which a no-op repeats
    # Flowfile.document_hash: the proof still holds after an edit of comments or layout (proof.py).
    flowfile_document: str = ""
    # proof.spec_digests of `tasks`, in order, SPEC_DIGEST bytes each: one bytes object (marshal reads one copy).
    specs: bytes = b""
    # `tasks` marshalled, as read: a run that keeps the rows as they are writes these bytes again
    # rather than marshal 100,000 rows anew (proof.leave_snapshot). Empty: marshalled on writing.
    rows_data: bytes = b""


def path_in(state_dir: str | Path) -> str:
    return os.path.join(state_dir, SNAPSHOT_NAME)


def remove(state_dir: str | Path) -> None:
    from ..removal import remove  # not on the no-op path, which only reads the snapshot

    remove(str(state_dir), SNAPSHOT_NAME, boundary=str(state_dir))  # a name in it passes through no link


def write(state_dir: str | Path, snap: Snapshot) -> None:
    files = snap.files
    data = (
        _FORMAT, snap.version, snap.flowfile, snap.flowfile_stat, snap.flowfile_hash, snap.targets,
        dict(snap.env_inputs), snap.flow_name, snap.jobs, snap.roots,
        snap.rows_data or marshal.dumps(tuple(snap.tasks)),
        "\0".join(files.paths), array("q", files.stats).tobytes(), array("Q", files.inodes).tobytes(),
        snap.suspects, snap.hooks, snap.shell, snap.state_identity, snap.includes, tuple(snap.notices),
        snap.flowfile_document, snap.specs,
    )
    target = path_in(state_dir)
    tmp = f"{target}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        marshal.dump(data, f)
    os.replace(tmp, target)  # readers see the old file or the new one, never half of one


def read(state_dir: str | Path) -> Optional[Snapshot]:
    try:
        with open(path_in(state_dir), "rb") as f:
            data = marshal.loads(f.read())  # several times faster than marshal.load(f)
        if not isinstance(data, tuple) or len(data) != 22 or data[0] != _FORMAT:
            return None
        (_, version, flowfile, ff_stat, ff_hash, targets, env_inputs, name, jobs, roots, rows_data, paths, stats,
         inodes, suspects, hooks, shell, identity, includes, notices, document, specs) = data
        tasks = marshal.loads(rows_data)
        if not isinstance(tasks, tuple):
            return None
        files = Files(paths.split("\0") if paths else [], array("q", stats), array("Q", inodes))
    except (OSError, EOFError, ValueError, TypeError, AttributeError):
        return None
    if len(files.stats) != _PER * len(files.paths) or len(files.inodes) != len(files.paths):
        return None
    if not isinstance(specs, bytes) or len(specs) != SPEC_DIGEST * len(tasks):
        return None
    return Snapshot(flowfile, ff_stat, ff_hash, targets, env_inputs, name, jobs, roots, tasks, files, suspects,
                    hooks, shell, version, identity, includes, notices, document, specs, rows_data)


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


def files_unchanged(files: Files, root_fd: int) -> bool:
    """True when every file (relative to `root_fd`) still has the recorded stat key (stat_key).

    In this process alone: with many files and two CPUs the no-op path shares
    the scan with a forked child instead (prescan.py).
    """
    return not _scan(files, root_fd, stop_at_first=True)


def changed_files(files: Files, root_fd: int) -> Set[str]:
    """The files (relative to `root_fd`) whose stat key differs from the record, or that are gone."""
    return _scan(files, root_fd, stop_at_first=False)


def _scan(files: Files, root_fd: int, *, stop_at_first: bool) -> Set[str]:
    stat = os.stat
    changed: Set[str] = set()
    numbers = iter(files.stats)
    # zip takes a path's three numbers in turn from one iterator: faster
    # than indexing the array (11,000 files: 34 ms against 44).
    for path, inode, size, mtime, ctime in zip(files.paths, files.inodes, numbers, numbers, numbers):
        try:
            st = stat(path, dir_fd=root_fd)
            same = st.st_size == size and st.st_mtime_ns == mtime and st.st_ctime_ns == ctime and st.st_ino == inode
        except OSError:
            same = False
        if not same:
            changed.add(path)
            if stop_at_first:
                break
    return changed


def stat_key(path: str) -> Optional[Tuple[int, int, int, int]]:
    """Size, mtime, ctime and inode: what must all stay put while the content does."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def include_stats(paths: Iterable[str]) -> Optional[Tuple[Tuple[str, Tuple[int, int, int, int]], ...]]:
    """Each included file with its stat, for `Snapshot.includes`; None if one cannot be stat'ed."""
    out = []
    for path in paths:
        stat = stat_key(path)
        if stat is None:
            return None
        out.append((path, stat))
    return tuple(out)


def includes_unchanged(snap: Snapshot) -> bool:
    """Whether every file the Flowfile includes still has the stat it was proven with."""
    return all(tuple(stat) == stat_key(path) for path, stat in snap.includes)
