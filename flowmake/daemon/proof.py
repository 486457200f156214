"""What the daemon knows: the snapshot it verified, still true while no watched name has changed.

`verify` follows the fast path's own proof (cli/fastpath.py, engine/snapshot.py)
with the watches in place first: drain the events (any later change is an
event), read the snapshot, watch every directory down to each of its files
(the Flowfile and its includes too), and only then stat them all. If each
file still has the stat key the snapshot recorded, is a regular file (no
symbolic link: a change at its target would not reach these watches) and
lies on a local file system, the snapshot holds until the next event that
touches one of those names. The per-request checks the snapshot leaves to
its caller (the targets, env_inputs, the state database) stay with the
request (server.py).
"""

from __future__ import annotations

import os
import stat as stats

from .. import __version__
from ..engine import snapshot as snapshots
from .watches import Unwatchable, Watches, check_local, local_fs_types


class Proof:
    """The daemon's belief about one project: `snap` when proven, with why not otherwise."""

    def __init__(self, root: str, flowfile: str, watches: Watches) -> None:
        self.root, self.flowfile, self.watches = root, flowfile, watches
        self.state_dir = watches.state_dir
        self.snap = None  # the verified Snapshot, or None
        self.why_not = "not verified yet"
        self.stale = True  # something changed since the last verification (or there was none)
        self.root_id = _dir_id(root)

    def refresh(self) -> None:
        """Take in the queued events; verify again when one mattered."""
        if self.watches.drain():
            self.stale = True
        if self.stale and not self.watches.gone:
            self.verify()

    def verify(self) -> None:
        self.snap, self.stale = None, False
        self.watches.drain()  # what happened before this point, the stats below see
        self.watches.reset_names()
        try:
            self.snap = self._verified()
            self.why_not = ""
        except Unwatchable as exc:
            self.why_not = str(exc)

    def _verified(self):
        snap = snapshots.read(self.state_dir)  # the state directory is watched: a rewrite is an event
        if snap is None:
            raise Unwatchable("no no-op snapshot (the last run left work, or none ran yet)")
        if snap.version != __version__ or snap.flowfile != self.flowfile:
            raise Unwatchable("the snapshot is another flowmake's or another Flowfile's")
        if snap.suspects:
            raise Unwatchable("files written too recently to be vouched for by their stat")
        if any(hook is not None for hook in snap.hooks):
            # A hook run from here would have the daemon's process, session and terminal, not the client's.
            raise Unwatchable("the Flowfile has hooks, which the client's own process runs")
        includes = [self._relative(path) for path, _ in snap.includes]
        watched = [*snap.files.paths, os.path.basename(self.flowfile), *includes]
        self.watches.cover(watched)
        # Now stat: a change from here on is an event in the queue.
        if _dir_id(self.root) != self.root_id:
            raise Unwatchable("the project directory was replaced")
        devices = self._check_files(snap)
        if tuple(snap.flowfile_stat) != snapshots.stat_key(self.flowfile) or not snapshots.includes_unchanged(snap):
            raise Unwatchable("the Flowfile changed since the snapshot")
        for path, _ in snap.includes:
            devices.add(_regular(path).st_dev)
        devices.add(_regular(self.flowfile).st_dev)
        devices.update(os.stat(os.path.join(self.root, rel) if rel else self.root).st_dev
                       for rel in self.watches.dirs)
        check_local(devices, local_fs_types())
        return snap

    def _relative(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        if rel.startswith("..") or os.path.isabs(rel):
            raise Unwatchable(f"included file {path} is outside the project")
        return rel

    def _check_files(self, snap) -> set:
        """Every file as the snapshot recorded it, by lstat (a link is refused); the devices they are on."""
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        lstat = os.lstat
        devices = set()
        try:
            files = snap.files
            numbers = iter(files.stats)
            for path, inode, size, mtime, ctime in zip(files.paths, files.inodes, numbers, numbers, numbers):
                try:
                    st = lstat(path, dir_fd=root_fd)
                except OSError:
                    raise Unwatchable(f"{path} is gone") from None
                if not stats.S_ISREG(st.st_mode):
                    raise Unwatchable(f"{path} is not a regular file (a symbolic link?)")
                if st.st_size != size or st.st_mtime_ns != mtime or st.st_ctime_ns != ctime or st.st_ino != inode:
                    raise Unwatchable(f"{path} changed since the snapshot")
                if st.st_nlink > 1:
                    self.watches.watch_file(path)
                    again = lstat(path, dir_fd=root_fd)  # changed through another link before its watch began?
                    if (again.st_ino, again.st_size, again.st_mtime_ns, again.st_ctime_ns) != (inode, size, mtime, ctime):
                        raise Unwatchable(f"{path} changed since the snapshot")
                devices.add(st.st_dev)
        finally:
            os.close(root_fd)
        return devices

    def holds_for(self, flowfile: str) -> bool:
        """Cheap checks per request, beside the events: the same project at the same place."""
        return self.snap is not None and flowfile == self.flowfile and _dir_id(self.root) == self.root_id \
            and tuple(self.snap.flowfile_stat) == snapshots.stat_key(flowfile)


def _dir_id(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _regular(path: str) -> os.stat_result:
    st = os.lstat(path)
    if not stats.S_ISREG(st.st_mode):
        raise Unwatchable(f"{path} is not a regular file (a symbolic link?)")
    return st
