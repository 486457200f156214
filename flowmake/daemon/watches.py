"""The daemon's eyes: inotify watches on the directories of a snapshot's files, drained synchronously.

inotify queues an event while the system call that changes a file is still
running, so once a client has asked, a non-blocking read of the inotify
file descriptor returns every change completed before it asked: no cookie
round trip, no reader thread. inotify_simple (the `daemon` extra) is that
read and nothing more; watchfiles, the `watch` extra, reads on a Rust
thread of its own, debounces, and folds a queue overflow into a rescan, so
it would need watchman's cookie protocol on every request.

Directories are watched, each with the names in it that matter (a file of
the snapshot, or the next directory down to one), from the project root
down, so that renaming an ancestor is seen as well as writing a file. A
file with more than one hard link also gets a watch of its own: a write
through a link in another directory reaches only the inode's watchers.
Mounts changing (another file system mounted over a watched directory
makes no inotify event) are seen through /proc/self/mountinfo's poll.
"""

from __future__ import annotations

import os
import select

from inotify_simple import INotify, flags

_SELF_GONE = flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED | flags.UNMOUNT
_DIR_MASK = (flags.MODIFY | flags.ATTRIB | flags.CLOSE_WRITE | flags.MOVED_FROM | flags.MOVED_TO | flags.CREATE
             | flags.DELETE | flags.DELETE_SELF | flags.MOVE_SELF | flags.DONT_FOLLOW | flags.ONLYDIR)
_FILE_MASK = (flags.MODIFY | flags.ATTRIB | flags.CLOSE_WRITE | flags.DELETE_SELF | flags.MOVE_SELF
              | flags.DONT_FOLLOW)
# File systems where every change to a file passes through this kernel, so inotify sees it. Network and
# FUSE file systems (another host or process writes), overlays (a lower layer changed underneath) are not.
LOCAL_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "jfs", "reiserfs", "bcachefs"})


class Unwatchable(Exception):
    """A file or directory whose changes inotify cannot be trusted to report."""


class Watches:
    """Watches on a project's directories: `drain` says whether anything that matters changed since the last."""

    def __init__(self, root: str, state_dir: str, own_names: frozenset, state_names: frozenset) -> None:
        self.root, self.state_dir = root, state_dir
        self.inotify = INotify(nonblocking=True)
        self.names: dict = {}  # wd -> the names in that directory that matter (None: a file's own watch)
        self.dirs: dict = {}  # directory (relative to root, "" for root) -> wd
        self.gone = False  # the root or the state directory was deleted or moved: the daemon ends
        self._own = own_names  # names in the state directory whose loss ends the daemon
        self._state_names = own_names | state_names  # the names there that matter (the snapshot)
        self._mounts = open("/proc/self/mountinfo", "rb")
        self._mount_poll = select.poll()
        self._mount_poll.register(self._mounts, select.POLLPRI | select.POLLERR)
        self._mount_poll.poll(0)  # the first poll reports the table once: consumed here
        # The root and the state directory first: everything later is a name in one of them.
        self.root_wd = self._add_dir("", set())
        self.state_wd = self._add_dir(os.path.relpath(state_dir, root), set(self._state_names))

    def fileno(self) -> int:
        return self.inotify.fileno()

    def close(self) -> None:
        self.inotify.close()
        self._mounts.close()

    def _add_dir(self, rel: str, names: set) -> int:
        path = os.path.join(self.root, rel) if rel else self.root
        try:
            wd = self.inotify.add_watch(path, _DIR_MASK)  # ONLYDIR|DONT_FOLLOW: a symbolic link fails here
        except OSError as exc:
            raise Unwatchable(f"cannot watch {path}: {exc.strerror}") from None
        self.dirs[rel] = wd
        self.names.setdefault(wd, set()).update(names)
        return wd

    def cover(self, files, extra_dirs=()) -> None:
        """Watch every directory from the root down to each of `files` (relative paths) and `extra_dirs`.

        Called before the files are stat'ed: a change after this is an event.
        """
        wanted: dict = {}
        for rel in files:
            parent, name = os.path.split(rel)
            wanted.setdefault(parent, set()).add(name)
            while parent:
                up, name = os.path.split(parent)
                wanted.setdefault(up, set()).add(name)
                parent = up
        for rel in extra_dirs:
            wanted.setdefault(rel, set())
        # Parents before children; every one added again, even if watched: the kernel gives the same watch
        # for the same directory, and a new one for a directory that replaced it (its old watch's end may
        # have been lost in a queue overflow).
        for rel in sorted(wanted, key=lambda d: d.count("/") + (d != "")):
            self._add_dir(rel, wanted[rel])

    def watch_file(self, rel: str) -> None:
        """A watch of the file's own inode (a file with other hard links)."""
        try:
            wd = self.inotify.add_watch(os.path.join(self.root, rel), _FILE_MASK)
        except OSError as exc:
            raise Unwatchable(f"cannot watch {rel}: {exc.strerror}") from None
        self.names[wd] = None

    def drain(self) -> bool:
        """Read every queued event; True when one touches a watched name, a watch ended, or events were lost."""
        changed = bool(self._mount_poll.poll(0))
        while True:
            events = self.inotify.read(timeout=0)
            if not events:
                return changed
            for event in events:
                changed = self._seen(event) or changed

    def _seen(self, event) -> bool:
        mask = event.mask
        if mask & flags.Q_OVERFLOW:
            return True  # events were lost: the proof is re-made from scratch (Proof.verify)
        names = self.names.get(event.wd, ())
        if mask & _SELF_GONE:
            if event.wd in (self.root_wd, self.state_wd):
                self.gone = True
            self._forget(event.wd)
            return True
        if names is None:
            return True  # a file's own watch
        if event.wd == self.state_wd and event.name in self._own and mask & (flags.DELETE | flags.MOVED_FROM):
            self.gone = True
        if event.wd == self.root_wd and event.name == os.path.basename(self.state_dir) \
                and mask & (flags.DELETE | flags.MOVED_FROM):
            self.gone = True
        return event.name in names

    def _forget(self, wd: int) -> None:
        self.names.pop(wd, None)
        for rel, known in list(self.dirs.items()):
            if known == wd:
                del self.dirs[rel]
        try:
            self.inotify.rm_watch(wd)
        except OSError:
            pass  # already gone with its inode

    def reset_names(self) -> None:
        """Forget which names matter (a new snapshot names its own); the root's and state's stay watched."""
        for wd, names in self.names.items():
            if names is not None and wd not in (self.root_wd, self.state_wd):
                names.clear()
        self.names[self.root_wd] = set()
        self.names[self.state_wd] = set(self._state_names)


def local_fs_types() -> dict:
    """Device number -> file system type, from /proc/self/mountinfo."""
    found = {}
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f.read().decode("utf-8", "replace").splitlines():
            left, sep, right = line.partition(" - ")
            fields = left.split()
            if not sep or len(fields) < 3 or ":" not in fields[2]:
                continue
            major, minor = fields[2].split(":", 1)
            fstype = right.split(" ", 1)[0]
            found[os.makedev(int(major), int(minor))] = fstype
    return found


def check_local(devices, fs_types: dict) -> None:
    """Unwatchable unless every device is a local file system inotify fully sees (LOCAL_FS)."""
    for device in devices:
        fstype = fs_types.get(device)
        if fstype not in LOCAL_FS:
            raise Unwatchable(f"file system {fstype or 'unknown'} (device {os.major(device)}:{os.minor(device)}) "
                              "is not one whose changes inotify is sure to see")
