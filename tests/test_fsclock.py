"""The file system's clock as the racy-timestamp reference (store/fsclock.py).

An entry is trusted when the file's mtime is below a marker touched before
the read; the tests set mtimes a few milliseconds apart, well inside the
old 2 s window, so that they tell the two rules apart.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flowmake.store.fsclock import MARKER_NAME, FsClock
from flowmake.store.hashing import FileHasher, hash_bytes


def project(tmp_path: Path) -> Path:
    (tmp_path / ".flowmake").mkdir()
    return tmp_path


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def marker_stamp(root: Path) -> int:
    return (root / ".flowmake" / MARKER_NAME).stat().st_mtime_ns


def frozen_clock(root: Path) -> FsClock:
    """A clock whose rate limit never lets it touch the marker again by itself."""
    return FsClock(str(root / ".flowmake" / MARKER_NAME), monotonic_ns=lambda: 0)


def touched(root: Path) -> FileHasher:
    """A hasher on a frozen clock that has made its one touch (hashing an old file)."""
    (root / "old.txt").write_bytes(b"x")
    set_mtime(root / "old.txt", 1_000_000_000)
    hasher = FileHasher(root, {}, clock=frozen_clock(root))
    hasher.hash("old.txt")
    return hasher


def write_in_the_touch_tick(root: Path, name: str, data: bytes) -> Path:
    path = root / name
    path.write_bytes(data)
    set_mtime(path, marker_stamp(root))
    return path


def test_a_file_written_milliseconds_before_the_hash_is_trusted_at_once(tmp_path: Path) -> None:
    root = project(tmp_path)
    f = root / "out.txt"
    f.write_bytes(b"rows\n")
    set_mtime(f, time.time_ns() - 5_000_000)  # 5 ms old: racy under a fixed 2 s window
    hasher = FileHasher(root, {})
    assert hasher.hash("out.txt") == hash_bytes(b"rows\n")
    entry = hasher.take_unsaved()["out.txt"]
    assert entry.trusted and entry.reference_ns == marker_stamp(root)
    again = FileHasher(root, {"out.txt": entry})
    assert again.hash("out.txt") == hash_bytes(b"rows\n") and again.reads == 0


def test_a_file_stamped_at_or_after_the_marker_stays_racy_and_is_read_again(tmp_path: Path) -> None:
    # The same tick as the reference: a write after the hash could keep its stat.
    root = project(tmp_path)
    hasher = touched(root)
    write_in_the_touch_tick(root, "out.txt", b"v1")
    hasher.hash("out.txt")
    entry = hasher.take_unsaved()["out.txt"]
    assert not entry.trusted
    again = FileHasher(root, {"out.txt": entry}, clock=frozen_clock(root))
    assert again.hash("out.txt") == hash_bytes(b"v1") and again.reads == 1


def test_without_a_state_directory_the_system_clock_rule_holds_and_nothing_is_made(tmp_path: Path) -> None:
    f = tmp_path / "out.txt"
    f.write_bytes(b"rows\n")
    set_mtime(f, time.time_ns() - 5_000_000)
    hasher = FileHasher(tmp_path, {})
    hasher.hash("out.txt")
    assert not hasher.take_unsaved()["out.txt"].trusted  # 5 ms is inside the 2 s window
    assert not (tmp_path / ".flowmake").exists()  # `status` before any run writes nothing
    set_mtime(f, time.time_ns() - 3_000_000_000)
    aged = FileHasher(tmp_path, {})
    aged.hash("out.txt")
    assert aged.take_unsaved()["out.txt"].trusted


def test_a_file_on_another_device_than_the_marker_is_judged_by_the_system_clock(tmp_path: Path) -> None:
    elsewhere = Path("/dev/shm")
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm) beside the temporary directory")
    root = project(tmp_path)
    clock = FsClock(str(root / ".flowmake" / MARKER_NAME))
    outside = elsewhere / f"flowmake-fsclock-{os.getpid()}"
    outside.mkdir()
    try:
        f = outside / "in.txt"
        f.write_bytes(b"x")
        set_mtime(f, time.time_ns() - 5_000_000)
        hasher = FileHasher(outside, {}, clock=clock)
        hasher.hash("in.txt")
        assert not hasher.take_unsaved()["in.txt"].trusted  # another clock: the marker says nothing of it
    finally:
        for child in outside.iterdir():
            child.unlink()
        outside.rmdir()


def test_settle_reads_once_more_what_was_racy_and_then_trusts_it(tmp_path: Path) -> None:
    root = project(tmp_path)
    hasher = touched(root)
    write_in_the_touch_tick(root, "out.txt", b"made by a quick task")
    hasher.hash("out.txt")
    assert not hasher.updated["out.txt"].trusted and hasher.reads == 2
    assert hasher.settle() == 1
    assert hasher.reads == 3 and hasher.updated["out.txt"].trusted
    assert hasher.take_unsaved()["out.txt"].hash == hash_bytes(b"made by a quick task")
    assert hasher.settle() == 0  # nothing racy is left


def test_settle_leaves_a_file_changed_since_its_hash_to_the_next_reader(tmp_path: Path) -> None:
    root = project(tmp_path)
    hasher = touched(root)
    f = write_in_the_touch_tick(root, "out.txt", b"v1")
    hasher.hash("out.txt")
    f.write_bytes(b"v2, longer")
    assert hasher.settle() == 0
    assert not hasher.updated["out.txt"].trusted  # still the racy record of v1: the next run reads it


def test_settle_gives_up_on_a_clock_too_coarse_to_pass_in_time(tmp_path: Path) -> None:
    # As on FAT (2 s): it waits a few ticks, not seconds, and the file stays racy.
    root = project(tmp_path)
    hasher = FileHasher(root, {})
    f = root / "out.txt"
    f.write_bytes(b"v1")
    set_mtime(f, time.time_ns() + 10_000_000_000)  # ten seconds ahead of the clock
    hasher.hash("out.txt")
    started = time.monotonic()
    assert hasher.settle() == 0
    assert time.monotonic() - started < 1.0
    assert not hasher.updated["out.txt"].trusted


def test_clock_is_past_a_file_written_before_it_and_not_one_stamped_ahead(tmp_path: Path) -> None:
    root = project(tmp_path)
    f = root / "Flowfile.toml"
    f.write_text("[tasks.a]\n")
    set_mtime(f, time.time_ns() - 5_000_000)
    assert FileHasher(root, {}).clock_is_past(str(f))
    set_mtime(f, time.time_ns() + 10_000_000_000)
    assert not FileHasher(root, {}).clock_is_past(str(f))
    assert not FileHasher(root, {}).clock_is_past(str(root / "gone.toml"))
