"""Moving outputs between a project and the cache, checked by their content hashes.

Storing: a task's files are collected with the hashes its run recorded,
each blob not already in the cache is uploaded (its bytes hashed again on
the way: a file changed since is not stored), and the entry is written last.
Restoring: each blob is downloaded to a temporary name beside its output and
hashed on the way; only when every file of the entry arrived whole does the
caller rename them into place (`place`).
"""

from __future__ import annotations

import os
import shutil
import stat as stat_module
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import not_utf8
from ..store.hashing import hash_bytes
from .entry import INLINE_MAX, Blob, Entry, blob_path, entry_path, files_by_output, tree_hash
from .packs import PACK_MIN, write_pack

if TYPE_CHECKING:  # names for type checkers only
    from .backends import DirBackend, FsspecBackend

    Backend = "DirBackend | FsspecBackend"

_RESTORING = ".flowmake-restore-"
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


class Fault(Exception):
    """This entry cannot be restored (a blob missing, corrupt or truncated): the task runs and rewrites it.

    `blob`: the path of a blob whose bytes are wrong, which the repair must replace.
    """

    def __init__(self, message: str, blob: Optional[str] = None) -> None:
        super().__init__(message)
        self.blob = blob


class Staged(NamedTuple):
    """An output downloaded and verified, at a temporary name beside where it goes."""

    output: str
    temp: str  # absolute
    final: str  # absolute


def collect_files(root: str, outputs: Mapping[str, Optional[str]],
                  hash_of: Callable[[str], Optional[str]]) -> Optional[Dict[str, Blob]]:
    """Every file of these outputs with its recorded hash; None when they changed since they were hashed."""
    files: Dict[str, Blob] = {}
    for output, digest in outputs.items():
        if digest is None:
            return None
        if not output.endswith("/"):
            # Its recorded hash, not hashed again: prepare() checks the bytes it stores against it.
            found = _blob(os.path.join(root, output), digest)
            if found is None:
                return None
            files[output] = found
            continue
        pairs: List[Tuple[str, str]] = []
        for rel, full in _walk(os.path.join(root, output.rstrip("/"))):
            found = _blob(full, hash_of(output + rel))
            if found is None:
                return None
            files[output + rel] = found
            pairs.append((rel, found.hash))
        if tree_hash(pairs) != digest:
            return None
    return files


def _blob(full: str, digest: Optional[str]) -> Optional[Blob]:
    if digest is None:
        return None
    try:
        st = os.stat(full)
    except OSError:
        return None
    return Blob(digest, st.st_size, bool(st.st_mode & stat_module.S_IXUSR))


def _walk(base: str) -> List[Tuple[str, str]]:
    found: List[Tuple[str, str]] = []
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                rel = os.path.relpath(full, base).replace(os.sep, "/")
                found.append((not_utf8(rel) or rel, full))
    return sorted(found)


def store(backend: Backend, root: str, entry: Entry) -> bool:
    """Upload the entry's blobs that are not there yet, then the entry; False when a file changed meanwhile."""
    prepared = prepare(backend, root, entry)
    return prepared is not None and write_loose(backend, root, prepared)


def prepare(backend: Backend, root: str, entry: Entry) -> Optional[Entry]:
    """Upload the blobs of an entry to store; the entry with its small files inside, or None if a file changed.

    Blobs first, entry last: a reader never finds an entry before all its
    blobs are whole. A blob already there is touched, so that a `gc` running
    meanwhile sees it as just used; and once the entry is written its blobs
    are looked at again (`_look_again`), in case a `gc` took one between the two.
    """
    files = dict(entry.files)
    for path, blob in entry.files.items():
        if blob.size <= INLINE_MAX:
            data = _read_small(os.path.join(root, path), blob)
            if data is None:
                return None
            files[path] = blob._replace(data=data)
            continue
        name = blob_path(blob.hash)
        if not backend.keep(name) and not backend.upload(name, os.path.join(root, path), blob.hash):
            return None
    return entry._replace(files=files)


def write_loose(backend: Backend, root: str, entry: Entry) -> bool:
    """Write a prepared entry as a file of its own."""
    backend.write_atomic(entry_path(entry.key), entry.to_json())
    if not _look_again(backend, root, entry):
        backend.delete(entry_path(entry.key))
        return False
    return True


def write_packed(backend: Backend, prepared: List[Tuple[str, Entry]]) -> int:
    """Write prepared entries (each with its project's root): as one pack (packs.py) when they are many;
    how many were stored."""
    if len(prepared) < PACK_MIN:
        return sum(write_loose(backend, root, e) for root, e in prepared)
    write_pack(backend, [e for _, e in prepared])
    # A blob a gc took meanwhile and that cannot be uploaded again leaves its entry unrestorable: a reader
    # then warns, runs the task and repairs the entry (an entry cannot be taken out of a written pack).
    return sum(_look_again(backend, root, e) for root, e in prepared)


def _look_again(backend: Backend, root: str, entry: Entry) -> bool:
    for path, blob in entry.blobs.items():
        name = blob_path(blob.hash)
        if not backend.exists(name) and not backend.upload(name, os.path.join(root, path), blob.hash):
            return False
    return True


def _read_small(full: str, blob: Blob) -> Optional[bytes]:
    """A small file's bytes, if they still hash to what its run recorded."""
    try:  # no buffered file object: a few system calls fewer for each of a run's many small outputs
        fd = os.open(full, _READ)
    except OSError:
        return None
    try:
        data = os.read(fd, INLINE_MAX + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == blob.size and hash_bytes(data) == blob.hash else None


def stage(backend: Backend, root: str, entry: Entry, cancelled: Callable[[], bool]) -> List[Staged]:
    """Download every output of the entry beside where it goes, each file checked against its hash.

    Raises Fault (what is wrong, in words) and leaves nothing behind when a
    blob is missing or its bytes do not hash to what the entry says.
    """
    staged: List[Staged] = []
    try:
        for output, files in files_by_output(entry).items():
            final = os.path.join(root, output.rstrip("/"))
            parent, name = os.path.split(final)
            temp = os.path.join(parent, f".{name}{_RESTORING}{os.urandom(4).hex()}")
            try:
                os.makedirs(parent, exist_ok=True)
                _remove_leftovers(parent, f".{name}{_RESTORING}")
                staged.append(Staged(output, temp, final))
                if output.endswith("/"):
                    os.mkdir(temp)
            except OSError as exc:
                raise Fault(f"cannot write beside {output}: {exc.strerror or exc}") from None
            for path, blob in files.items():
                if cancelled():
                    raise Fault("cancelled")
                target = temp if path == output else os.path.join(temp, path[len(output):])
                _fetch(backend, blob, target)
    except BaseException:
        discard(staged)
        raise
    return staged


def _fetch(backend: Backend, blob: Blob, target: str) -> None:
    try:  # the project's side: a failure here is this task's, not the cache's
        os.makedirs(os.path.dirname(target), exist_ok=True)
        dst = open(target, "wb")
    except OSError as exc:
        raise Fault(f"cannot write {target}: {exc.strerror or exc}") from None
    with dst:
        if blob.data is not None:  # inline, checked as the entry was read
            dst.write(blob.data)
            digest, size = blob.hash, blob.size
        else:
            digest = backend.download(blob_path(blob.hash), dst)
            size = dst.tell()
    if digest is None:
        raise Fault(f"blob {blob.hash[:12]} is missing")
    if size < blob.size:
        raise Fault(f"blob {blob.hash[:12]} is truncated ({size} of {blob.size} bytes)", blob_path(blob.hash))
    if digest != blob.hash or size != blob.size:
        raise Fault(f"blob {blob.hash[:12]} is corrupt ({size} bytes that hash to {digest[:12]})", blob_path(blob.hash))
    mode = 0o777 if blob.executable else 0o666
    os.chmod(target, mode & ~_umask())


def _remove_leftovers(parent: str, prefix: str) -> None:
    """What a restore killed half-way left beside this output (the run that holds the project's lock owns them)."""
    for name in os.listdir(parent):
        if name.startswith(prefix):
            discard([Staged("", os.path.join(parent, name), "")])


def place(staged: List[Staged]) -> None:
    """Rename verified outputs into place: a file at once; a directory's old tree moved aside, then removed."""
    for item in staged:
        if not item.output.endswith("/"):
            if os.path.isdir(item.final) and not os.path.islink(item.final):
                shutil.rmtree(item.final)
            os.replace(item.temp, item.final)
            continue
        old = None
        if os.path.lexists(item.final):
            old = item.temp + "-old"
            os.replace(item.final, old)
        os.replace(item.temp, item.final)
        if old is not None:
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.unlink(old)


def discard(staged: List[Staged]) -> None:
    for item in staged:
        if os.path.isdir(item.temp) and not os.path.islink(item.temp):
            shutil.rmtree(item.temp, ignore_errors=True)
        elif os.path.lexists(item.temp):
            os.unlink(item.temp)


_UMASK: List[int] = []


def _umask() -> int:
    if not _UMASK:
        mask = os.umask(0)
        os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]
