"""The cache package on its own: entries and blobs in a real directory, faults, concurrent writers, gc."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cachetools import open_session, output_hashes, produced, store_outputs
from flowmake.cache.backends import CacheURLError, DirBackend, open_backend
from flowmake.cache.entry import blob_path, entry_path, parse_entry
from flowmake.cache.key import entry_key
from flowmake.cache.maintenance import gc, parse_age, parse_size, stats
from flowmake.errors import FlowError
from flowmake.store.hashing import hash_file


def make_outputs(root: Path) -> None:
    (root / "build" / "tables").mkdir(parents=True)
    (root / "build" / "a.csv").write_text("a,b\n1,2\n" * 1000)  # a blob of its own (not inline)
    (root / "build" / "tables" / "x.csv").write_text("x\n")
    (root / "build" / "tables" / "sub").mkdir()
    (root / "build" / "tables" / "sub" / "y.csv").write_text("y\n")
    tool = root / "build" / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)


OUTPUTS = ("build/a.csv", "build/tables/", "build/tool.sh")


def test_store_then_restore_in_another_project(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a, b = tmp_path / "a", tmp_path / "b"
    make_outputs(a)
    warnings: list = []
    key = store_outputs(open_session(str(cache), warnings), a, OUTPUTS)
    session = open_session(str(cache), warnings)
    entry = session.lookup(key, "t")
    assert entry is not None and entry.produced.run == "R1" and entry.produced.host == "host-a"
    (b / "build" / "tables").mkdir(parents=True)
    (b / "build" / "tables" / "stale.csv").write_text("old tree, replaced whole\n")
    assert session.restore(entry, str(b), "t")
    assert output_hashes(b, OUTPUTS) == output_hashes(a, OUTPUTS) == dict(entry.outputs)
    assert not (b / "build" / "tables" / "stale.csv").exists()
    assert os.access(b / "build" / "tool.sh", os.X_OK) and not os.access(b / "build" / "a.csv", os.X_OK)
    assert sorted(p.name for p in (b / "build").iterdir()) == ["a.csv", "tables", "tool.sh"]  # no temporaries
    assert warnings == [] and session.counts["hits"] == 1


def test_blobs_are_shared_across_entries_and_projects(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for name in ("p1", "p2"):
        (tmp_path / name / "out").mkdir(parents=True)
        (tmp_path / name / "out" / "same.txt").write_text("identical bytes\n" * 500)
    session = open_session(str(cache))
    k1 = store_outputs(session, tmp_path / "p1", ["out/same.txt"], fingerprint="f1")
    k2 = store_outputs(session, tmp_path / "p2", ["out/same.txt"], fingerprint="f2")
    assert k1 != k2
    blobs = list((cache / "v1" / "blobs").rglob("*"))
    assert len([p for p in blobs if p.is_file()]) == 1
    assert stats(DirBackend(str(cache)))["entries"] == 2


def test_a_miss_is_counted_and_the_key_depends_on_outputs() -> None:
    assert entry_key("fp", ["a"]) != entry_key("fp", ["b"]) != entry_key("fq", ["b"])
    assert entry_key("fp", ["a", "b"]) == entry_key("fp", ["a", "b"])


def test_stored_only_if_the_bytes_still_hash_as_recorded(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "o.txt").write_text("one\n")
    session = open_session(str(tmp_path / "cache"))
    recorded = output_hashes(tmp_path / "p", ["o.txt"])
    (tmp_path / "p" / "o.txt").write_text("changed after it was hashed\n")
    assert not session.store(entry_key("f", ["o.txt"]), str(tmp_path / "p"), recorded,
                             lambda path: recorded.get(path), produced())
    assert not (tmp_path / "cache" / "v1" / "entries").exists() or not list((tmp_path / "cache").rglob("*.json"))


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing"])
def test_a_damaged_blob_is_a_fault_naming_the_entry_and_leaves_outputs_alone(tmp_path: Path, damage: str) -> None:
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    make_outputs(a)
    key = store_outputs(open_session(str(cache)), a, OUTPUTS)
    blob = cache / blob_path(hash_file(a / "build" / "a.csv"))
    if damage == "corrupt":
        blob.write_text("a,b\n9,9\n" * 1000)
    elif damage == "truncated":
        blob.write_bytes(blob.read_bytes()[:3])
    else:
        blob.unlink()
    (b / "build").mkdir(parents=True)
    (b / "build" / "a.csv").write_text("mine\n")
    warnings: list = []
    session = open_session(str(cache), warnings)
    entry = session.lookup(key, "extract")
    assert entry is not None
    assert not session.restore(entry, str(b), "extract")
    assert len(warnings) == 1 and key[:16] in warnings[0] and "(extract)" in warnings[0] and damage in warnings[0]
    assert (b / "build" / "a.csv").read_text() == "mine\n"
    assert sorted(p.name for p in (b / "build").iterdir()) == ["a.csv"]  # staged files discarded
    # The task then runs, and storing its outputs repairs the entry.
    store_outputs(open_session(str(cache)), a, OUTPUTS)
    again = open_session(str(cache), warnings)
    assert again.restore(again.lookup(key, "extract"), str(b), "extract")
    assert (b / "build" / "a.csv").read_text() == "a,b\n1,2\n" * 1000 and len(warnings) == 1


@pytest.mark.parametrize("content", [b"", b'{"format": 1, "key"', b"\x00\x01not json", b'{"format": 1}'])
def test_an_unreadable_entry_is_a_fault_not_a_hit(tmp_path: Path, content: bytes) -> None:
    key = entry_key("f", ["o"])
    path = tmp_path / "cache" / entry_path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    warnings: list = []
    assert open_session(str(tmp_path / "cache"), warnings).lookup(key, "t") is None
    assert len(warnings) == 1 and key[:16] in warnings[0]


def test_an_entry_naming_paths_outside_its_outputs_is_refused(tmp_path: Path) -> None:
    key = entry_key("f", ["o.txt"])
    doc = {"format": 1, "key": key, "outputs": {"o.txt": "h"}, "files": {"../../etc/passwd": ["h", 1, False]},
           "produced": produced()._asdict()}
    with pytest.raises(Exception, match="outside the project"):
        parse_entry(json.dumps(doc).encode(), key)


def test_small_files_live_inside_their_entry_and_are_checked(tmp_path: Path) -> None:
    cache, a, b = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    (a / "out").mkdir(parents=True)
    (a / "out" / "small.txt").write_text("tiny\n")
    key = store_outputs(open_session(str(cache)), a, ["out/small.txt"])
    assert not (cache / "v1" / "blobs").exists()  # one file in the cache for the task: its entry
    path = cache / entry_path(key)
    doc = json.loads(path.read_text())
    assert len(doc["files"]["out/small.txt"]) == 4  # hash, size, executable, the bytes
    session = open_session(str(cache))
    assert session.restore(session.lookup(key, "t"), str(b), "t") and (b / "out" / "small.txt").read_text() == "tiny\n"
    doc["files"]["out/small.txt"][3] = "dGlu"  # "tin", base64: truncated
    path.write_text(json.dumps(doc))
    warnings: list = []
    assert open_session(str(cache), warnings).lookup(key, "t") is None
    assert len(warnings) == 1 and "inline content" in warnings[0] and key[:16] in warnings[0]


def test_a_half_written_entry_is_never_seen(tmp_path: Path) -> None:
    # What a writer killed while writing leaves: temporary names only, which lookups never read.
    cache, a = tmp_path / "cache", tmp_path / "a"
    make_outputs(a)
    key = entry_key("f", OUTPUTS)
    final = cache / entry_path(key)
    final.parent.mkdir(parents=True)
    (final.parent / (final.name + ".tmp-123-abcd")).write_bytes(b'{"format": 1, "ke')
    warnings: list = []
    assert open_session(str(cache), warnings).lookup(key, "t") is None and warnings == []


def _kill_mid_upload(cache: str, project: str) -> None:
    # A blob big enough that the writer is still copying it when it is killed.
    session = open_session(cache)
    store_outputs(session, Path(project), ["big.bin"], fingerprint="big")


def test_a_writer_killed_half_way_leaves_no_entry(tmp_path: Path) -> None:
    cache, a = tmp_path / "cache", tmp_path / "a"
    a.mkdir()
    with open(a / "big.bin", "wb") as f:
        f.write(os.urandom(1 << 20) * 200)  # 200 MiB
    code = ("import sys; sys.path.insert(0, sys.argv[3]); from test_cache import _kill_mid_upload; "
            "_kill_mid_upload(sys.argv[1], sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(cache), str(a), str(Path(__file__).parent)])
    deadline = time.monotonic() + 30
    while not list(cache.rglob("*.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(cache.rglob("*.tmp-*")), "the writer was killed before it began the blob"
    key = entry_key("big", ["big.bin"])
    assert not (cache / entry_path(key)).exists()
    warnings: list = []
    assert open_session(str(cache), warnings).lookup(key, "t") is None and warnings == []
    # gc takes the leftovers once they are older than its grace period.
    gc(DirBackend(str(cache)), older_than=1e9, grace=0.0)
    assert not list(cache.rglob("*.tmp-*")) and not [p for p in cache.rglob("*") if p.is_file()]


def _write_many(cache: str, project: str, rounds: int) -> None:
    session = open_session(cache)
    for _ in range(rounds):
        store_outputs(session, Path(project), OUTPUTS, fingerprint="same")


def test_two_writers_of_one_entry_at_once(tmp_path: Path) -> None:
    cache, a = tmp_path / "cache", tmp_path / "a"
    make_outputs(a)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(cache), str(a), 40)) for _ in range(2)]
    for p in procs:
        p.start()
    key = entry_key("same", OUTPUTS)
    b = tmp_path / "b"
    b.mkdir()
    restored = 0
    warnings: list = []
    while any(p.is_alive() for p in procs):
        session = open_session(str(cache), warnings)
        entry = session.lookup(key, "t")
        if entry is not None:
            assert session.restore(entry, str(b), "t")
            restored += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert warnings == []
    entry = open_session(str(cache)).lookup(key, "t")
    assert entry is not None and output_hashes(a, OUTPUTS) == dict(entry.outputs)
    assert not list(cache.rglob("*.tmp-*"))


def _store_stream(cache: str, project: str, count: int) -> None:
    session = open_session(cache)
    for i in range(count):
        (Path(project) / "o.txt").write_text(f"version {i % 7}\n" * 1000)  # blobs shared between some entries
        store_outputs(session, Path(project), ["o.txt"], fingerprint=f"f{i}")


def test_gc_while_a_writer_stores_never_leaves_an_entry_without_its_blobs(tmp_path: Path) -> None:
    cache, a = tmp_path / "cache", tmp_path / "a"
    a.mkdir()
    ctx = multiprocessing.get_context("spawn")
    writer = ctx.Process(target=_store_stream, args=(str(cache), str(a), 300))
    writer.start()
    rounds = 0
    while writer.is_alive() or rounds == 0:
        gc(DirBackend(str(cache)), max_size=20_000, grace=0.05)
        rounds += 1
    writer.join()
    assert writer.exitcode == 0 and rounds > 1
    backend = DirBackend(str(cache))
    for path, _size, _mtime in backend.listing("v1/entries"):
        key = path.rsplit("/", 1)[-1][:-5]
        entry = parse_entry(backend.read(path), key)
        for blob in entry.files.values():
            assert backend.exists(blob_path(blob.hash)), f"{path} names a blob gc removed"


def test_gc_removes_least_recently_used_first(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    keys = []
    for i in range(3):
        p = tmp_path / f"p{i}"
        p.mkdir()
        (p / "o.bin").write_bytes(bytes([i]) * 10_000)
        keys.append(store_outputs(open_session(str(cache)), p, ["o.bin"], fingerprint=f"f{i}"))
    now = time.time()
    for age, key in zip((300, 100, 200), keys):  # entry 0 least recently used, then 2, then 1
        os.utime(cache / entry_path(key), (now - age, now - age))
    for blob in (cache / "v1" / "blobs").rglob("*"):
        if blob.is_file():
            os.utime(blob, (now - 4000, now - 4000))
    result = gc(DirBackend(str(cache)), max_size=21_000, now=now)  # two blobs and their entries fit
    assert result["removed_entries"] == 1 and result["removed_blobs"] == 1 and 20_000 < result["bytes"] <= 21_000
    assert not (cache / entry_path(keys[0])).exists() and (cache / entry_path(keys[2])).exists()
    result = gc(DirBackend(str(cache)), older_than=150, now=now)
    assert result["removed_entries"] == 1 and (cache / entry_path(keys[1])).exists()
    # A restore marks its entry used: it is then the last to go.
    session = open_session(str(cache))
    assert session.restore(session.lookup(keys[1], "t"), str(tmp_path / "p9"), "t")
    assert (cache / entry_path(keys[1])).stat().st_mtime > now - 5


def test_sizes_and_ages() -> None:
    assert parse_size("10GB") == 10 * 10**9 and parse_size("2GiB") == 2 * 2**30 and parse_size("500") == 500
    assert parse_size("1.5 mb") == 1_500_000
    assert parse_age("30d") == 30 * 86400 and parse_age("12h") == 43200
    for bad in ("ten", "-1GB", "5XB"):
        with pytest.raises(FlowError):
            parse_size(bad)
    with pytest.raises(FlowError):
        parse_age("30 days")


def test_an_unreachable_cache_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the cache should be\n")
    make_outputs(tmp_path / "a")
    warnings: list = []
    session = open_session(str(tmp_path / "not-a-dir"), warnings)
    for i in range(3):
        assert session.lookup(entry_key(f"f{i}", OUTPUTS), "t") is None
        hashes = output_hashes(tmp_path / "a", OUTPUTS)
        assert not session.store(entry_key(f"f{i}", OUTPUTS), str(tmp_path / "a"), hashes,
                                 lambda p: output_hashes(tmp_path / "a", [p])[p], produced())
    assert len(warnings) == 1 and "goes on without the cache" in warnings[0] and session.off


def test_a_cache_that_does_not_answer_times_out(tmp_path: Path) -> None:
    # A FIFO where the entry should be: opening it blocks until a writer comes, which never does.
    key = entry_key("f", ["o"])
    path = tmp_path / "cache" / entry_path(key)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    warnings: list = []
    session = open_session(str(tmp_path / "cache"), warnings, timeout=0.3)
    started = time.monotonic()
    assert session.lookup(key, "t") is None
    assert session.lookup(key, "t") is None  # off now: not asked again
    assert time.monotonic() - started < 2
    assert len(warnings) == 1 and "did not answer within 0.3s" in warnings[0]


def test_urls(tmp_path: Path) -> None:
    assert isinstance(open_backend("rel/cache", base=str(tmp_path), timeout=1), DirBackend)
    assert open_backend("rel/cache", base=str(tmp_path), timeout=1).root == str(tmp_path / "rel/cache")
    assert open_backend(f"file://{tmp_path}/c", base="/", timeout=1).root == f"{tmp_path}/c"
    with pytest.raises(CacheURLError, match="unknown scheme 'nosuch'"):
        open_backend("nosuch://x/y", base="/", timeout=1)


def test_s3_without_the_extra_names_the_pip_command() -> None:
    # The extra's absence, for real: s3fs cannot be imported in this interpreter.
    code = ("import sys; sys.modules['s3fs'] = None\n"
            "from flowmake.cache.backends import open_backend, CacheURLError\n"
            "try:\n    open_backend('s3://bucket/p', base='/', timeout=1)\n"
            "except CacheURLError as e:\n    print(e.render())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'flowmake[s3]'" in out and "s3://" in out
