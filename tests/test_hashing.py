"""Content hashes behind the stat cache, and the racy-timestamp guard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowmake.store.fsclock import RACY_WINDOW_NS, FsClock
from flowmake.store.hashing import FileHasher, StatEntry, hash_bytes


def age(path: Path, seconds: float = 10) -> None:
    st = path.stat()
    old = st.st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(old, old))


def test_hash_is_content_hash(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello")
    assert FileHasher(tmp_path, {}).hash("a.txt") == hash_bytes(b"hello")


def test_missing_file_hashes_to_none(tmp_path: Path) -> None:
    assert FileHasher(tmp_path, {}).hash("nope.txt") is None


def test_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    age(f)
    first = FileHasher(tmp_path, {})
    digest = first.hash("a.txt")
    assert first.reads == 1
    second = FileHasher(tmp_path, first.take_unsaved())
    assert second.hash("a.txt") == digest
    assert second.reads == 0


def test_racy_entry_is_rehashed(tmp_path: Path) -> None:
    # Hashed in the same instant the file was written: the stat cache cannot
    # prove a later same-size write did not happen, so it must read again.
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    st = f.stat()
    racy = StatEntry(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, "stale-hash", st.st_mtime_ns)
    hasher = FileHasher(tmp_path, {"a.txt": racy})
    assert hasher.hash("a.txt") == hash_bytes(b"hello")
    assert hasher.reads == 1


def test_a_new_file_hashed_by_this_run_is_read_once_until_it_changes(tmp_path: Path) -> None:
    # A task's new output is racy, but the tasks below read it moments later:
    # the same stat within one run means the same bytes the run already read.
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    hasher = FileHasher(tmp_path, {})
    assert hasher.hash("a.txt") == hasher.hash("a.txt") == hash_bytes(b"hello")
    assert hasher.reads == 1
    f.write_bytes(b"hello, world")
    assert hasher.hash("a.txt") == hash_bytes(b"hello, world")
    assert hasher.reads == 2
    # ... and it stays racy on record: the next run reads it again.
    assert not hasher.take_unsaved()["a.txt"].trusted
    again = FileHasher(tmp_path, {"a.txt": hasher.updated["a.txt"]})
    again.hash("a.txt")
    assert again.reads == 1


def test_changed_size_or_mtime_is_rehashed(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    age(f)
    cache = FileHasher(tmp_path, {})
    cache.hash("a.txt")
    entries = cache.take_unsaved()
    f.write_bytes(b"hello world")
    age(f, 5)
    again = FileHasher(tmp_path, entries)
    assert again.hash("a.txt") == hash_bytes(b"hello world")
    assert again.reads == 1


def test_tree_hash_covers_names_and_contents(tmp_path: Path) -> None:
    d = tmp_path / "out"
    (d / "sub").mkdir(parents=True)
    (d / "x.txt").write_text("1")
    (d / "sub" / "y.txt").write_text("2")
    h1 = FileHasher(tmp_path, {}).hash("out/")
    (d / "sub" / "y.txt").write_text("3")
    h2 = FileHasher(tmp_path, {}).hash("out/")
    (d / "sub" / "y.txt").write_text("2")
    (d / "sub" / "y.txt").rename(d / "sub" / "z.txt")
    h3 = FileHasher(tmp_path, {}).hash("out/")
    assert len({h1, h2, h3}) == 3


@pytest.mark.parametrize("size", [(1 << 20) - 1, 3 << 20, (16 << 20) + 7], ids=["read", "mmap", "mmap-threads"])
def test_every_way_of_reading_gives_the_same_hash(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "big.bin").write_bytes(data)
    assert FileHasher(tmp_path, {}).hash("big.bin") == hash_bytes(data)


def test_hash_known_takes_a_racy_entry_whose_stat_matches_and_reads_a_changed_file(tmp_path: Path) -> None:
    # For the outputs of a task that runs anyway: they only add reasons to the list.
    f = tmp_path / "out.txt"
    f.write_bytes(b"v1")
    st = f.stat()
    racy = StatEntry(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, "recorded", st.st_mtime_ns)
    hasher = FileHasher(tmp_path, {"out.txt": racy})
    assert hasher.hash_known("out.txt") == "recorded"
    assert hasher.reads == 0
    assert hasher.hash("out.txt") == hash_bytes(b"v1")  # the exact answer still reads it
    assert hasher.reads == 1
    f.write_bytes(b"v2, longer")
    assert FileHasher(tmp_path, {"out.txt": racy}).hash_known("out.txt") == hash_bytes(b"v2, longer")
    assert FileHasher(tmp_path, {"out.txt": racy}).hash_known("gone.txt") is None
