"""Where a cache lives: a directory (local or shared), or any fsspec URL.

Both backends offer the same few operations over paths relative to the
cache's root. Writes are whole or absent: a directory writes a temporary
name and renames it into place (atomic on POSIX, even over NFS); an object
store's PUT is atomic by itself. fsspec and its backends (s3fs for s3://)
are optional: imported only when a URL names them.
"""

from __future__ import annotations

import datetime
import importlib.util
import itertools
import os
from typing import Any, BinaryIO, Callable, Iterator, Optional, Set, Tuple

from blake3 import blake3

from ..errors import FlowError
from .entry import ROOT


CHUNK = 1 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
S3_HINT = "pip install 'flowmake[s3]'"
# Object stores whose PUT is atomic: objects are written in place, never renamed.
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}
# Extras that bring a scheme's fsspec backend.
_EXTRA_FOR = {"s3": S3_HINT, "s3a": S3_HINT}


class CacheURLError(FlowError):
    """The cache URL cannot be used at all (exit 2): an unknown scheme, or a missing optional extra."""


def _tmp_name(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"


def copy_hashing(src: BinaryIO, dst: BinaryIO) -> str:
    """Copy a stream and return the BLAKE3 of what was copied."""
    hasher = blake3()
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return hasher.hexdigest()
        hasher.update(chunk)
        dst.write(chunk)


class DirBackend:
    """A cache in a directory: on this machine, or a shared mount every job sees."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.url = root
        self._made: set = set()  # folders known to exist: os.makedirs tries a mkdir even then
        # Temporary names: this writer's own prefix and a counter (a random suffix per file costs a system call).
        self._tmp = f".tmp-{os.getpid()}-{os.urandom(4).hex()}-"
        self._tmps = itertools.count()

    def _full(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def _parent(self, full: str) -> None:
        folder = os.path.dirname(full)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)

    def _tmp_name(self, full: str) -> str:
        return f"{full}{self._tmp}{next(self._tmps)}"

    def read(self, rel: str) -> Optional[bytes]:
        try:
            with open(self._full(rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_many(self, rels: "list[str]") -> "list[Optional[bytes]]":
        return [self.read(rel) for rel in rels]

    def write_atomic(self, rel: str, data: bytes) -> None:
        # Four system calls for a small file (entries are written one per task): no buffered file object.
        full = self._full(rel)
        tmp = self._tmp_name(full)
        try:
            fd = os.open(tmp, _CREATE, 0o666)
        except FileNotFoundError:  # its folder is not there yet: made once, not looked for before each write
            self._parent(full)
            fd = os.open(tmp, _CREATE, 0o666)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, full)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def entry_keys(self, limit: int) -> Optional[Set[str]]:
        """The key of every entry (one listing of each shard), or None for a cache of more than `limit`."""
        keys: Set[str] = set()
        try:
            shards = [e.path for e in os.scandir(self._full(f"{ROOT}/entries")) if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return keys
        for shard in shards:
            try:
                names = os.listdir(shard)
            except (FileNotFoundError, NotADirectoryError):
                continue
            keys.update(n[:-5] for n in names if n.endswith(".json"))
            if len(keys) > limit:
                return None
        return keys

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._full(rel))

    def touch(self, rel: str) -> bool:
        """Mark as used now (gc removes the least recently used first); False when it is not there."""
        try:
            os.utime(self._full(rel))
            return True
        except FileNotFoundError:
            return False

    keep = touch  # a blob already there: marked as used, so a gc running meanwhile leaves it

    def upload(self, rel: str, local: str, expected: str) -> bool:
        """Copy a project file in as `rel`; False (nothing written) when its bytes no longer hash to `expected`."""
        full = self._full(rel)
        try:
            src = open(local, "rb")
        except OSError:
            return False  # gone or unreadable since it was hashed: not stored, and the cache is not to blame
        self._parent(full)
        tmp = self._tmp_name(full)
        try:
            with src, open(tmp, "wb") as dst:
                digest = copy_hashing(src, dst)
            if digest != expected:
                _unlink_quietly(tmp)
                return False
            os.replace(tmp, full)
            return True
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def download(self, rel: str, dst: BinaryIO) -> Optional[str]:
        """Stream `rel` into `dst`; the BLAKE3 of the bytes copied, None when `rel` is not there."""
        try:
            src = open(self._full(rel), "rb")
        except FileNotFoundError:
            return None
        with src:
            return copy_hashing(src, dst)

    def listing(self, prefix: str) -> Iterator[Tuple[str, int, float]]:
        """(relative path, size, modification time) of every file under `prefix`."""
        base = self._full(prefix)
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                yield os.path.relpath(full, self.root).replace(os.sep, "/"), st.st_size, st.st_mtime

    def delete(self, rel: str) -> None:
        _unlink_quietly(self._full(rel))


class FsspecBackend:
    """A cache at an fsspec URL (s3://bucket/prefix through s3fs, gs://, az://, ...)."""

    def __init__(self, url: str, make_fs: Callable[[], Tuple[object, str]], protocol: str) -> None:
        self.url = url
        self._make_fs = make_fs
        self._fs: object = None
        self._root = ""
        self.atomic_put = protocol in _OBJECT_STORES

    @property
    def fs(self) -> Any:
        # Made on first use, on the cache's thread (guard.py): importing s3fs and its client takes a
        # second that a run with nothing to look up should not pay, and connecting must have a deadline.
        if self._fs is None:
            fs, root = self._make_fs()
            self._root = root.rstrip("/")
            self._fs = fs
        return self._fs

    @property
    def root(self) -> str:
        self.fs  # noqa: B018 - made with its root
        return self._root

    def _full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def read(self, rel: str) -> Optional[bytes]:
        try:
            return self.fs.cat_file(self._full(rel))
        except FileNotFoundError:
            return None

    def read_many(self, rels: "list[str]") -> "list[Optional[bytes]]":
        """Several objects at once (s3fs fetches them concurrently); None for each that is not there."""
        if len(rels) <= 1:
            return [self.read(rel) for rel in rels]
        fulls = [self._full(rel) for rel in rels]
        got = self.fs.cat(fulls, on_error="return")
        out: "list[Optional[bytes]]" = []
        for full in fulls:
            data = got.get(full, got.get(self.fs._strip_protocol(full)))
            if isinstance(data, FileNotFoundError) or data is None:
                out.append(None)
            elif isinstance(data, BaseException):
                raise data
            else:
                out.append(data)
        return out

    def write_atomic(self, rel: str, data: bytes) -> None:
        full = self._full(rel)
        if self.atomic_put:
            self.fs.pipe_file(full, data)
            return
        tmp = _tmp_name(full)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, full)

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._full(rel))

    def entry_keys(self, limit: int) -> Optional[Set[str]]:
        keys: Set[str] = set()
        for path, _size, _mtime in self.listing(f"{ROOT}/entries"):
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".json") and ".tmp-" not in name:
                keys.add(name[: -len(".json")])
                if len(keys) > limit:
                    return None
        return keys

    def touch(self, rel: str) -> bool:
        # Object stores cannot touch an object: write its bytes again (entries are small).
        data = self.read(rel)
        if data is None:
            return False
        self.write_atomic(rel, data)
        return True

    def keep(self, rel: str) -> bool:
        # An object cannot be touched without copying it: a gc meanwhile is caught by store's second look.
        return self.exists(rel)

    def upload(self, rel: str, local: str, expected: str) -> bool:
        try:
            with open(local, "rb") as src:
                data = src.read()
        except OSError:
            return False
        if blake3(data).hexdigest() != expected:
            return False
        self.write_atomic(rel, data)
        return True

    def download(self, rel: str, dst: BinaryIO) -> Optional[str]:
        try:
            src = self.fs.open(self._full(rel), "rb")
        except FileNotFoundError:
            return None
        with src:
            return copy_hashing(src, dst)

    def listing(self, prefix: str) -> Iterator[Tuple[str, int, float]]:
        base = self._full(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            # fsspec names found paths as its root does (without the scheme)
            yield path[len(self.root) + 1:], int(info.get("size") or 0), _mtime(info)

    def delete(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._full(rel))
        except FileNotFoundError:
            pass


def _mtime(info: dict) -> float:
    for field in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(field)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_backend(url: str, *, base: str, timeout: float) -> "DirBackend | FsspecBackend":
    """The backend a cache URL names; relative directories are taken from `base`.

    Raises CacheURLError for a URL no backend serves. Nothing is contacted
    here: whether the cache answers is learnt by the first operation.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return DirBackend(os.path.normpath(os.path.join(base, os.path.expanduser(url))))
    if scheme == "file":
        return DirBackend(rest)
    try:
        import fsspec
        from fsspec.registry import known_implementations, registry
    except ImportError:
        hint = _EXTRA_FOR.get(scheme, S3_HINT + " (fsspec, and the package of that scheme's backend)")
        raise CacheURLError(f"cache URL {url!r}: its scheme needs fsspec, which is not installed",
                            hint=hint) from None
    if scheme not in known_implementations and scheme not in registry:
        raise CacheURLError(f"cache URL {url!r}: unknown scheme {scheme!r}",
                            hint="use a directory, or an fsspec URL such as s3://bucket/prefix")
    options: dict = {}
    if scheme in ("s3", "s3a"):
        # botocore's defaults wait 60 s per read and retry 4 times: a slow cache must not hold the run that long.
        options = {"config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout,
                                     "retries": {"max_attempts": 2, "mode": "standard"}},
                   "use_listings_cache": False, "skip_instance_cache": True}
    spec = known_implementations.get(scheme)
    if spec is not None and scheme not in registry:
        module = spec["class"].rsplit(".", 1)[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            hint = _EXTRA_FOR.get(scheme, f"install the fsspec backend of {scheme}:// ({spec.get('err', module)})")
            raise CacheURLError(f"cache URL {url!r}: the {scheme}:// backend ({module}) is not installed",
                                hint=hint)
    return FsspecBackend(url, lambda: fsspec.core.url_to_fs(url, **options), scheme)
