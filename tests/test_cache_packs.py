"""Packs (flowmake/cache/packs.py): a run's many new entries in one file, read, repaired and collected like entries."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import List

from cachetools import open_session, output_hashes, produced
from flowmake.cache.backends import DirBackend
from flowmake.cache.entry import entry_path
from flowmake.cache.key import entry_key
from flowmake.cache.maintenance import entries_in, gc, list_cache, stats
from flowmake.cache.packs import PACK_MIN
from flowmake.store.hashing import FileHasher


def _project(root: Path, count: int, big: bool = False) -> List[str]:
    (root / "out").mkdir(parents=True)
    outputs = []
    for i in range(count):
        data = (f"task {i}\n" * (2000 if big else 1)).encode()
        (root / "out" / f"{i}.txt").write_bytes(data)
        outputs.append(f"out/{i}.txt")
    return outputs


def _store_as_a_run(cache: Path, root: Path, outputs: List[str], run: str = "R1", prefix: str = "f") -> List[str]:
    """Store every output as its own task's entry, the way a run does (queued, written by the writer)."""
    session = open_session(str(cache))
    hasher = FileHasher(root, {})
    keys = []
    for i, out in enumerate(outputs):
        key = entry_key(f"{prefix}{i}", [out])
        assert session.store(key, str(root), {out: hasher.hash(out)}, hasher.hash, produced(f"t{i}", run), wait=False)
        keys.append(key)
    session.finish(run, host="h", project="p")
    assert session.counts["stored"] == len(outputs) and session.off is None
    return keys


def _packs(cache: Path) -> List[Path]:
    return sorted((cache / "v1" / "packs").glob("*")) if (cache / "v1" / "packs").exists() else []


def test_a_run_of_many_tasks_writes_one_pack_and_another_project_restores_from_it(tmp_path: Path) -> None:
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    outputs = _project(a, 40)
    keys = _store_as_a_run(cache, a, outputs)
    assert [p.suffix for p in _packs(cache)] == [".idx", ".pack"]
    assert not (cache / "v1" / "entries").exists()  # no file per task
    assert stats(DirBackend(str(cache)))["entries"] == 40
    session = open_session(str(cache))
    for key, out in zip(keys, outputs):  # answered from the listing and the pack index
        entry = session.lookup(key, "t")
        assert entry is not None and session.restore(entry, str(b), "t")
        assert output_hashes(b, [out]) == output_hashes(a, [out])
    assert session.counts["hits"] == 40 and session.counts["faults"] == 0
    assert session.lookup(entry_key("not stored", ["out/0.txt"]), "t") is None


def test_a_few_stores_are_entries_of_their_own(tmp_path: Path) -> None:
    cache, a = tmp_path / "cache", tmp_path / "a"
    keys = _store_as_a_run(cache, a, _project(a, PACK_MIN - 1))
    assert _packs(cache) == [] and all((cache / entry_path(k)).exists() for k in keys)


def test_blobs_of_a_pack_are_written_before_it(tmp_path: Path) -> None:
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    outputs = _project(a, 20, big=True)  # over entry.INLINE_MAX: blobs of their own
    keys = _store_as_a_run(cache, a, outputs)
    backend = DirBackend(str(cache))
    (index,) = list_cache(backend).entries
    entries = entries_in(backend, index) or []
    assert len(entries) == 20 and all(e.blobs and all(backend.exists(f"v1/blobs/{x.hash[:2]}/{x.hash}")
                                                       for x in e.blobs.values()) for e in entries)
    session = open_session(str(cache))
    assert session.restore(session.lookup(keys[3], "t"), str(b), "t")
    assert (b / outputs[3]).read_bytes() == (a / outputs[3]).read_bytes()


def test_a_pack_without_its_index_is_never_read_and_gc_takes_it(tmp_path: Path) -> None:
    # What a writer killed between the pack and its index leaves.
    cache, a = tmp_path / "cache", tmp_path / "a"
    keys = _store_as_a_run(cache, a, _project(a, 20))
    index = next(p for p in _packs(cache) if p.suffix == ".idx")
    index.unlink()
    warnings: list = []
    session = open_session(str(cache), warnings)
    assert session.lookup(keys[0], "t") is None and warnings == []
    assert stats(DirBackend(str(cache)))["entries"] == 0
    gc(DirBackend(str(cache)), older_than=1e9, grace=3600.0)
    assert len(_packs(cache)) == 1, "a fresh one may be a writer's that is about to write its index"
    gc(DirBackend(str(cache)), older_than=1e9, grace=0.0)
    assert _packs(cache) == []


def test_a_corrupt_entry_in_a_pack_is_a_warning_and_its_repair_wins(tmp_path: Path) -> None:
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    outputs = _project(a, 20)
    keys = _store_as_a_run(cache, a, outputs)
    pack = next(p for p in _packs(cache) if p.suffix == ".pack")
    doc = json.loads(pack.read_bytes())
    doc["entries"][keys[5]]["outputs"][outputs[5]] = "0" * 64  # its files no longer make its output
    pack.write_text(json.dumps(doc))
    warnings: list = []
    session = open_session(str(cache), warnings)
    assert session.lookup(keys[5], "t5") is None
    assert len(warnings) == 1 and keys[5][:16] in warnings[0] and "(t5)" in warnings[0]
    assert session.lookup(keys[6], "t6") is not None  # the rest of the pack is sound
    # The task ran: storing its outputs repairs the entry, as an entry of its own, which comes first.
    hasher = FileHasher(a, {})
    assert session.store(keys[5], str(a), {outputs[5]: hasher.hash(outputs[5])}, hasher.hash, produced(), wait=False)
    session.finish("R2", host="h", project="p")
    assert (cache / entry_path(keys[5])).exists()
    again: list = []
    fresh = open_session(str(cache), again)
    entry = fresh.lookup(keys[5], "t5")
    assert entry is not None and fresh.restore(entry, str(b), "t5") and again == []


def test_a_pack_is_collected_as_a_whole_least_recently_used_first(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = tmp_path / "p1", tmp_path / "p2"
    _store_as_a_run(cache, first, _project(first, 20), run="R1", prefix="first")
    keys = _store_as_a_run(cache, second, _project(second, 20), run="R2", prefix="second")
    indexes = sorted(p for p in _packs(cache) if p.suffix == ".idx")
    assert len(indexes) == 2
    owner = next(i for i in indexes if keys[0] in i.read_text().split())
    other = next(i for i in indexes if i != owner)
    now = time.time()
    os.utime(owner, (now - 300, now - 300))  # the least recently used, until it is restored from
    os.utime(other, (now - 100, now - 100))
    session = open_session(str(cache))
    assert session.restore(session.lookup(keys[0], "t"), str(tmp_path / "restored"), "t")
    assert owner.stat().st_mtime > now - 5
    backend = DirBackend(str(cache))
    result = gc(backend, max_size=list_cache(backend).entries[str(owner.relative_to(cache))][0], now=time.time())
    assert result["removed_entries"] == 1 and owner.exists() and not other.exists()
    assert not other.with_suffix(".pack").exists() and owner.with_suffix(".pack").exists()


def test_a_truncated_pack_is_a_fault_of_each_entry_looked_up_not_of_the_cache(tmp_path: Path) -> None:
    cache, a = tmp_path / "cache", tmp_path / "a"
    keys = _store_as_a_run(cache, a, _project(a, 20))
    pack = next(p for p in _packs(cache) if p.suffix == ".pack")
    pack.write_bytes(pack.read_bytes()[:100])
    loose = _store_as_a_run(cache, a / "few", _project(a / "few", 2), prefix="few")
    warnings: list = []
    session = open_session(str(cache), warnings)
    assert session.lookup(keys[0], "t0") is None and session.lookup(keys[1], "t1") is None
    assert len(warnings) == 2 and keys[0][:16] in warnings[0] and "unreadable pack" in warnings[0]
    assert session.off is None and session.lookup(loose[0], "few0") is not None
