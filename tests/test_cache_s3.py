"""The cache on S3: a real S3 API served by moto's server mode in its own process, s3fs as the client."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from cachetools import open_session, output_hashes, store_outputs
from flowmake.cache.entry import blob_path
from flowmake.cache.key import entry_key
from flowmake.cache.maintenance import gc, stats
from flowmake.store.hashing import hash_file
from motoserver import make_bucket, s3_env, serve, skip_without_s3

pytestmark = skip_without_s3


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    yield from serve()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    make_bucket(endpoint, bucket)
    return f"s3://{bucket}/team/cache"


def outputs(root: Path) -> None:
    (root / "out" / "dir").mkdir(parents=True)
    (root / "out" / "one.txt").write_text("one\n" * 2000)  # a blob (not inline)
    (root / "out" / "dir" / "two.txt").write_text("two\n")


OUTS = ("out/one.txt", "out/dir/")


def test_store_and_restore_through_s3(s3: str, tmp_path: Path) -> None:
    outputs(tmp_path / "a")
    warnings: list = []
    key = store_outputs(open_session(s3, warnings), tmp_path / "a", OUTS)
    session = open_session(s3, warnings)
    entry = session.lookup(key, "t")
    assert entry is not None and session.restore(entry, str(tmp_path / "b"), "t")
    assert output_hashes(tmp_path / "b", OUTS) == output_hashes(tmp_path / "a", OUTS)
    assert warnings == []
    session.finish("R2", host="h", project="p")
    st = stats(open_session(s3).backend)
    assert st["entries"] == 1 and st["blobs"] == 1 and st["hits"] == 1 and st["hit_rate"] == 1.0


def test_a_corrupt_blob_on_s3_is_a_fault_then_repaired(s3: str, tmp_path: Path) -> None:
    outputs(tmp_path / "a")
    key = store_outputs(open_session(s3), tmp_path / "a", OUTS)
    backend = open_session(s3).backend
    backend.write_atomic(blob_path(hash_file(tmp_path / "a" / "out" / "one.txt")), b"not one\n" * 1000)
    warnings: list = []
    session = open_session(s3, warnings)
    assert not session.restore(session.lookup(key, "t"), str(tmp_path / "b"), "t")
    assert len(warnings) == 1 and key[:16] in warnings[0] and "corrupt" in warnings[0]
    store_outputs(open_session(s3), tmp_path / "a", OUTS)
    session = open_session(s3, warnings)
    assert session.restore(session.lookup(key, "t"), str(tmp_path / "b"), "t") and len(warnings) == 1


def test_gc_on_s3(s3: str, tmp_path: Path) -> None:
    outputs(tmp_path / "a")
    store_outputs(open_session(s3), tmp_path / "a", OUTS)
    result = gc(open_session(s3).backend, older_than=0.0, grace=0.0, now=4e9)
    assert result["removed_entries"] == 1 and result["removed_blobs"] == 1
    assert stats(open_session(s3).backend)["entries"] == 0


def test_a_missing_bucket_is_one_warning(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    outputs(tmp_path / "a")
    warnings: list = []
    session = open_session("s3://no-such-bucket/x", warnings, timeout=5)
    assert session.lookup(entry_key("f", OUTS), "t") is None
    hashes = output_hashes(tmp_path / "a", OUTS)
    assert not session.store(entry_key("f", OUTS), str(tmp_path / "a"), hashes,
                             lambda p: output_hashes(tmp_path / "a", [p])[p], None)  # type: ignore[arg-type]
    print(warnings); assert len(warnings) == 1 and session.counts["stored"] == 0


def test_no_server_is_one_warning_and_quick(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from motoserver import free_port

    for name, value in s3_env(f"http://127.0.0.1:{free_port()}").items():  # nothing listens there
        monkeypatch.setenv(name, value)
    warnings: list = []
    session = open_session("s3://bucket/x", warnings, timeout=2)
    import time

    started = time.monotonic()
    for i in range(5):
        assert session.lookup(entry_key(f"f{i}", OUTS), "t") is None
    assert time.monotonic() - started < 15
    assert len(warnings) == 1 and "goes on without the cache" in warnings[0]
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_two_clones_share_a_cache_on_s3_through_the_cli(endpoint: str, s3: str, tmp_path: Path) -> None:
    from test_cli_cache import RESTORABLE, clone, contents, notices

    env = s3_env(endpoint)
    first = clone(tmp_path, "first")
    built = first.json_run("--cache", s3, env=env)
    assert built.returncode == 0 and notices(built) == [], built
    second = clone(tmp_path, "second")
    again = second.json_run("--cache", s3, env=env)
    assert again.returncode == 0 and notices(again) == [], again
    assert again.tasks_with("restored") == sorted(RESTORABLE) and again.ran == ["upload"]
    assert contents(second) == contents(first)
    assert second.run("audit", "verify").returncode == 0
    lineage = second.run("lineage", "build/count.txt")
    assert f"restored from cache (produced by run {built.run_id}" in lineage.stdout
    stats = json.loads(second.run("cache", "stats", "--json", "--cache", s3, env=env).stdout)
    assert stats["entries"] == 4 and stats["hits"] == 4
    # A wrong bucket: one warning, and the run goes on without the cache.
    third = clone(tmp_path, "third")
    lost = third.json_run("--cache", "s3://no-such-bucket-here/x", env=env)
    assert lost.returncode == 0 and len(lost.ran) == 5 and len(notices(lost)) == 1, lost


def test_a_run_of_many_tasks_stores_one_pack_on_s3_and_lookups_list_once(s3: str, tmp_path: Path) -> None:
    from flowmake.cache.entry import Produced
    from flowmake.store.hashing import FileHasher

    root = tmp_path / "a"
    (root / "out").mkdir(parents=True)
    keys = []
    for run in ("R1", "R2"):  # two runs: two packs, whose indexes a reader fetches at once
        session = open_session(s3)
        hasher = FileHasher(root, {})
        for i in range(20):
            (root / "out" / f"{i}.txt").write_text(f"task {i}\n")
            out = f"out/{i}.txt"
            keys.append(entry_key(f"{run}-f{i}", [out]))
            assert session.store(keys[-1], str(root), {out: hasher.hash(out)}, hasher.hash,
                                 Produced(run, "h", "u", 1.0, f"t{i}", "p", "v"), wait=False)
        session.finish(run, host="h", project="p")
    loose = store_outputs(open_session(s3), tmp_path / "a", ["out/0.txt"], fingerprint="loose")  # an entry of its own
    backend = session.backend
    assert sorted(p.rsplit(".", 1)[1] for p, _, _ in backend.listing("v1/packs")) == ["idx", "idx", "pack", "pack"]
    assert stats(backend)["entries"] == 41
    warnings: list = []
    reader = open_session(s3, warnings)
    for key in keys + [loose, entry_key("never stored", ["out/0.txt"])]:
        reader.lookup(key, "t")
    assert reader.counts["misses"] == 1 and warnings == [] and reader._listing is not None
    entry = reader.lookup(keys[7], "t")
    assert entry is not None and reader.restore(entry, str(tmp_path / "b"), "t")
    assert (tmp_path / "b" / "out" / "7.txt").read_text() == "task 7\n"
