"""One cache entry: the outputs of one key, as blobs, and who produced them.

An entry is a small JSON document; its files are blobs named by their
BLAKE3 content hash, the same hash flowmake's traces record, so a restored
file is checked against the entry with the hasher's own function. Layout
inside the cache (its URL is the root):

    v1/entries/<2 hex>/<key>.json
    v1/blobs/<2 hex>/<content hash>
    v1/runs/<run id>.json          what each run did with the cache (`cache stats`)
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

from ..store.hashing import hash_bytes, hash_text

ENTRY_FORMAT = 1
ROOT = "v1"


def entry_path(key: str) -> str:
    return f"{ROOT}/entries/{key[:2]}/{key}.json"


def blob_path(digest: str) -> str:
    return f"{ROOT}/blobs/{digest[:2]}/{digest}"


def run_path(run_id: str) -> str:
    return f"{ROOT}/runs/{run_id}.json"


PACKS = f"{ROOT}/packs"


# Files up to this size are kept inside their entry rather than as blobs of their own: creating a file
# in the cache costs more than the trivial task that made it (most outputs of a big pipeline are small),
# and deduplicating them saves nothing worth a second file.
INLINE_MAX = 4096


class Blob(NamedTuple):
    """One file of an entry: its content hash, size and whether it is executable; `data`: its bytes, if inline."""

    hash: str
    size: int
    executable: bool = False
    data: Optional[bytes] = None


class Produced(NamedTuple):
    """Where an entry's outputs were computed: the run, host and user, when, by which task and flowmake."""

    run: str
    host: str
    user: str
    at: float
    task: str
    project: str
    version: str


class Entry(NamedTuple):
    key: str
    # declared output -> its hash as a trace records it (a file's content hash, a directory's tree hash)
    outputs: Mapping[str, str]
    # every file to restore, project-relative (a directory output's files under its path) -> its blob
    files: Mapping[str, Blob]
    produced: Produced

    def to_json(self) -> bytes:
        return json.dumps(self.to_doc(), sort_keys=True, separators=(",", ":")).encode()

    def to_doc(self) -> dict:
        return {
            "format": ENTRY_FORMAT, "key": self.key, "outputs": dict(self.outputs),
            "files": {p: [b.hash, b.size, b.executable] + ([] if b.data is None else [base64.b64encode(b.data).decode()])
                      for p, b in sorted(self.files.items())},
            "produced": self.produced._asdict(),
        }

    @property
    def size(self) -> int:
        return sum(b.size for b in self.files.values())

    @property
    def blobs(self) -> "Dict[str, Blob]":
        """The files kept as blobs of their own (not inline)."""
        return {p: b for p, b in self.files.items() if b.data is None}


class CorruptEntry(Exception):
    """An entry that cannot be read as one: truncated, not JSON, or inconsistent with its own files."""


def parse_entry(data: bytes, key: str) -> Entry:
    try:
        doc = json.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptEntry(f"unreadable entry ({type(exc).__name__}: {exc})") from None
    return entry_of(doc, key)


def entry_of(doc: object, key: str) -> Entry:
    """The entry a JSON document (a file of its own, or one of a pack's) holds under `key`; CorruptEntry if none."""
    try:
        if not isinstance(doc, dict):
            raise CorruptEntry("not an entry")
        if doc.get("format") != ENTRY_FORMAT or doc.get("key") != key:
            raise CorruptEntry(f"not an entry of format {ENTRY_FORMAT} for this key")
        files = {str(p): _blob(v) for p, v in doc["files"].items()}
        outputs = {str(k): str(v) for k, v in doc["outputs"].items()}
        produced = Produced(**{f: doc["produced"][f] for f in Produced._fields})
    except CorruptEntry:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, binascii.Error) as exc:
        raise CorruptEntry(f"unreadable entry ({type(exc).__name__}: {exc})") from None
    entry = Entry(key, outputs, files, produced)
    # A shared cache is data from elsewhere: nothing in it may name a file outside the task's outputs.
    for path in list(outputs) + list(files):
        if not _safe(path):
            raise CorruptEntry(f"it names a path outside the project: {path!r}")
    for path in files:
        if not any(path == o or (o.endswith("/") and path.startswith(o)) for o in outputs):
            raise CorruptEntry(f"its file {path!r} is not under a declared output")
    for output, digest in outputs.items():
        if output_hash(output, files) != digest:
            raise CorruptEntry(f"its files do not make its output {output}")
    return entry


def _blob(value: list) -> Blob:
    if len(value) == 3:
        return Blob(str(value[0]), int(value[1]), bool(value[2]))
    digest, size, executable, text = value
    data = base64.b64decode(text, validate=True)
    if len(data) != size or hash_bytes(data) != digest:
        raise CorruptEntry(f"the inline content of a file does not hash to its {str(digest)[:12]}")
    return Blob(str(digest), int(size), bool(executable), data)


def _safe(path: str) -> bool:
    parts = path.rstrip("/").split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and all(p not in ("", ".", "..") for p in parts)


def output_hash(output: str, files: Mapping[str, Blob]) -> str:
    """The hash a trace records for `output`, made from the entry's files (hashing.FileHasher's rules)."""
    if not output.endswith("/"):
        blob = files.get(output)
        return blob.hash if blob is not None else ""
    return tree_hash([(p[len(output):], b.hash) for p, b in files.items() if p.startswith(output)])


def tree_hash(files: "list[Tuple[str, str]]") -> str:
    """A directory's hash from its (relative path, content hash) pairs: FileHasher.hash_tree's formula."""
    return hash_text("".join(f"{rel}\0{digest}\n" for rel, digest in sorted(files)))


def files_by_output(entry: Entry) -> "Dict[str, Dict[str, Blob]]":
    out: Dict[str, Dict[str, Blob]] = {o: {} for o in entry.outputs}
    for path, blob in entry.files.items():
        for output in entry.outputs:
            if path == output or (output.endswith("/") and path.startswith(output)):
                out[output][path] = blob
                break
    return out
