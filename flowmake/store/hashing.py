"""Content hashes of files and directory trees, behind a stat cache.

The only module that reads the contents of users' files. A file whose size,
mtime, ctime and inode match what was recorded when it was last hashed is
not read again, unless its mtime was not below the file system's clock
when it was hashed (fsclock.py): a write landing in the same timestamp tick
as the hash would leave the stat unchanged (git's "racy timestamp" problem),
so such entries are hashed again, at the end of the run (`settle`) or by
the next one.

The ctime is in the key, as in git's index, because it is the one time no
tool can set: `touch -r`, `cp -p`, `rsync -t` and `tar x` put an old mtime
back on new bytes (and a file deleted and written again often gets its
inode back), but every write and every utime moves the ctime to now.

Why BLAKE3: it is a cryptographic hash (the audit trail must prove which bytes
ran, so a fast non-cryptographic hash such as xxh3 is out) and it is the
fastest such hash available, several times sha256 and blake2b
(`benchmarks/hash_throughput.py`; benchmarks/README.md has the figures).
"""

from __future__ import annotations

import os
import stat as stat_module

from blake3 import blake3

from ..errors import not_utf8
from ..records import TYPE_CHECKING, NamedTuple
from .fsclock import FsClock

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Dict, List, Mapping, Optional, Sequence, Tuple

HASH_ALGORITHM = "blake3"
# Below this, one read() beats mmap set-up.
_MMAP_THRESHOLD = 1 << 20
# From this size on, blake3's own threads pay: on the 2-core VM, 16 MiB hash
# in 1.25 ms with them and 2.3 ms without, while at 1-4 MiB they gain nothing
# (0.47 against 0.53 ms for 4 MiB) and would only take the other core from
# the task running meanwhile.
_THREADS_THRESHOLD = 16 << 20


def hash_bytes(data: bytes) -> str:
    return blake3(data).hexdigest()


def source_hash(parts: Sequence[Tuple[str, str]]) -> str:
    """The hash of a Flowfile made of these (project-relative path, content hash) parts, the main file first.

    A Flowfile without includes keeps the hash of its bytes, so that the runs
    recorded before includes existed still name the same Flowfile; with them,
    it is the BLAKE3 of one line `PATH NUL HASH` per part.
    """
    if len(parts) == 1:
        return parts[0][1]
    return hash_text("".join(f"{path}\0{digest}\n" for path, digest in parts))


def hash_text(text: str) -> str:
    return blake3(text.encode("utf-8", "surrogateescape")).hexdigest()


def hash_file(path: Path) -> str:
    """Content hash of one file, without the stat cache (logs, audit checks)."""
    return _hash_contents(str(path), os.path.getsize(path))


class StatEntry(NamedTuple):
    """What a file's stat was when it was hashed. A tuple: a run over a big
    graph makes tens of thousands, and a frozen dataclass costs 4x as much."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    hash: str
    # The file system's clock just before the bytes were read (FsClock): any
    # later write is stamped at or above it.
    reference_ns: int

    def matches(self, st: os.stat_result) -> bool:
        return (self.size == st.st_size and self.mtime_ns == st.st_mtime_ns and self.ctime_ns == st.st_ctime_ns
                and self.inode == st.st_ino)

    @property
    def trusted(self) -> bool:
        # Judged on the mtime, as git judges its index: a plain write moves it
        # to now. Judging on the ctime instead would leave a file re-read
        # after a chmod or a `cp -p`, for a hole that needs a write and a
        # restored mtime inside one timestamp tick of the hash.
        return self.mtime_ns < self.reference_ns


class FileHasher:
    """Hashes project-relative paths, consulting and updating a stat cache.

    `cache` is the persisted cache (loaded by the state store); entries this
    hasher (re)computes are collected in `updated` for the store to save.
    `reads` counts files whose contents were actually read.
    """

    def __init__(
        self,
        root: Path,
        cache: Mapping[str, StatEntry],
        *,
        clock: Optional[FsClock] = None,
    ) -> None:
        self.root = root
        self._cache = cache
        self._clock = clock if clock is not None else FsClock.for_project(root)
        self.updated: Dict[str, StatEntry] = {}
        self._unsaved: Dict[str, StatEntry] = {}
        self.reads = 0
        self.bytes_read = 0

    def hash(self, path: str, *, trust_racy: bool = False) -> Optional[str]:
        """Content hash of a file, or of a tree when `path` ends in '/'; None if missing.

        `trust_racy`: see hash_known.
        """
        if path.endswith("/"):
            return self.hash_tree(path)
        full = os.path.join(self.root, path)
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat_module.S_ISDIR(st.st_mode):
            return self.hash_tree(path + "/")
        return self._hash_file(path, full, st, trust_racy)

    def _hash_file(self, path: str, full: str, st: os.stat_result, trust_racy: bool = False) -> Optional[str]:
        mine = self.updated.get(path)
        if mine is not None and mine.matches(st):
            # Hashed by this run and not changed since: a task's new output,
            # read next by the tasks below it. Racy or not, its entry stays as
            # recorded, so the next run still reads it again if it must.
            return mine.hash
        entry = self._cache.get(path)
        if entry is not None and entry.matches(st) and (entry.trusted or trust_racy):
            return entry.hash
        return self._read(path, full, st, self._clock.reference(st))

    def _read(self, path: str, full: str, st: os.stat_result, reference: int) -> Optional[str]:
        try:
            digest = _hash_contents(full, st.st_size)
        except FileNotFoundError:
            return None
        self.reads += 1
        self.bytes_read += st.st_size
        entry = StatEntry(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest, reference)
        self.updated[path] = self._unsaved[path] = entry
        return digest

    def settle(self) -> int:
        """Hash again, once, every file this run hashed while it was racy; how many.

        At the end of a run: the outputs of quick tasks are read in the tick
        they were written in, and left racy they would keep the next run off
        the no-op path and have it read them all again. One touch of the
        clock serves them all (after a wait of a tick or two on a coarse
        clock); a file written in that very tick stays racy.
        """
        racy: List[Tuple[str, str, os.stat_result]] = []
        for path, entry in self.updated.items():
            if entry.trusted:
                continue
            full = os.path.join(self.root, path)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if entry.matches(st):  # else changed since: whoever reads it next hashes it anew
                racy.append((path, full, st))
        if not racy:
            return 0
        self._clock.wait_past([st for _, _, st in racy])
        settled = 0
        for path, full, st in racy:
            reference = self._clock.reference(st)
            if st.st_mtime_ns < reference and self._read(path, full, st, reference) is not None:
                settled += 1
        return settled

    def clock_is_past(self, full: str) -> bool:
        """Whether the file system's clock is past `full`'s last write, so bytes read from now on are its bytes.

        For files read outside this hasher (the Flowfile, by the loader) whose
        stat is to vouch for them: read them again after this says yes.
        """
        try:
            st = os.stat(full)
        except OSError:
            return False
        return st.st_mtime_ns < self._clock.reference(st)

    def hash_known(self, path: str) -> Optional[str]:
        """Like `hash`, but a recorded hash whose stat still matches is taken even when racy.

        Only for reasons that cannot change what runs: the outputs of a task
        that runs anyway (its inputs changed) are looked at just to list
        `output modified`, and a task's fresh outputs are usually racy, having
        been hashed the moment they were written. Reading them all again
        would cost one edit in a big project as much as the tasks it reruns.
        """
        return self.hash(path, trust_racy=True)

    def entry(self, path: str) -> Optional[StatEntry]:
        """The entry the last hash of `path` was recorded with, if it was ever hashed."""
        return self.updated.get(path) or self._cache.get(path)

    def adopt(self, entries: Mapping[str, StatEntry]) -> None:
        """Entries hashed where the files are (a cluster's worker, executors/dask): taken as this run's own.

        Each is used only while the file's stat here still matches it, so a
        file on a shared file system is read once, by the side that wrote it.
        """
        self.updated.update(entries)
        self._unsaved.update(entries)

    def take_unsaved(self) -> Dict[str, StatEntry]:
        """Entries computed since the last call, for the state store to save."""
        out, self._unsaved = self._unsaved, {}
        return out

    def hash_tree(self, path: str) -> Optional[str]:
        """Hash of a directory: its files' relative paths and content hashes, sorted."""
        base = os.path.join(self.root, path.rstrip("/"))
        if not os.path.isdir(base):
            return None
        lines: List[str] = []
        for rel, full, st in _walk_files(base):
            digest = self._hash_file(path + rel, full, st)
            if digest is not None:
                lines.append(f"{rel}\0{digest}\n")
        return hash_text("".join(lines))


def _walk_files(base: str) -> List[Tuple[str, str, os.stat_result]]:
    found: List[Tuple[str, str, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except FileNotFoundError:
                continue  # dangling symlink or removed while walking
            if stat_module.S_ISREG(st.st_mode):
                rel = os.path.relpath(full, base).replace(os.sep, "/")
                # A name that is not UTF-8 is recorded as its escaped text
                # (caf\xe9.csv): it can be stored and shown, and is the same every run.
                found.append((not_utf8(rel) or rel, full, st))
    found.sort(key=lambda item: item[0])
    return found


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _hash_contents(full: str, size: int) -> str:
    if size >= _MMAP_THRESHOLD:
        hasher = blake3(max_threads=blake3.AUTO) if size >= _THREADS_THRESHOLD else blake3()
        hasher.update_mmap(full)
        return hasher.hexdigest()
    # Plain descriptor reads: a file object's set-up was most of hashing a small output.
    fd = os.open(full, os.O_RDONLY | _O_CLOEXEC)
    try:
        hasher = blake3()
        while True:
            chunk = os.read(fd, max(size + 1, 1 << 16))  # one read, then the empty one at its end
            if not chunk:
                return hasher.hexdigest()
            hasher.update(chunk)
    finally:
        os.close(fd)
