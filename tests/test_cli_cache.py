"""The shared output cache through the real CLI (issue 19): clones sharing a directory cache, faults, writers, gc.

Each test makes separate clones of one project (the same Flowfile and
source files in different directories, each with its own .flowmake/) that
share one cache directory, and runs the real `flowmake` in them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import FLOWMAKE, Project

from flowmake.cache.backends import DirBackend
from flowmake.cache.entry import blob_path, parse_entry
from flowmake.cache.maintenance import entries_in, list_cache, stats
from flowmake.store.hashing import hash_file

PIPELINE = """\
    [tasks.extract]
    matrix = { study = ["S01", "S02"] }
    inputs = ["raw/{study}.csv"]
    outputs = ["build/{study}.csv"]
    run = "tr a-z A-Z < raw/{study}.csv > build/{study}.csv"

    [tasks.tables]
    inputs = ["build/S01.csv", "build/S02.csv"]
    outputs = ["build/tables/", "build/count.txt"]
    run = "mkdir -p build/tables/sub && cp build/S01.csv build/tables/ && cp build/S02.csv build/tables/sub/ && wc -l build/S0*.csv > build/count.txt"

    [tasks.tool]
    inputs = ["build/count.txt"]
    outputs = ["dist/tool.sh"]
    run = "printf '#!/bin/sh\\\\necho hi\\\\n' > dist/tool.sh && chmod +x dist/tool.sh"

    [tasks.upload]
    inputs = ["dist/tool.sh"]
    outputs = ["dist/uploaded.txt"]
    run = "echo uploaded > dist/uploaded.txt"
    cache = false
"""
RESTORABLE = ["extract:S01", "extract:S02", "tables", "tool"]
OUTPUTS = ["build/S01.csv", "build/S02.csv", "build/tables/S01.csv", "build/tables/sub/S02.csv", "build/count.txt",
           "dist/tool.sh", "dist/uploaded.txt"]


def clone(tmp_path: Path, name: str, pipeline: str = PIPELINE) -> Project:
    root = tmp_path / name
    root.mkdir()
    proj = Project(root)
    proj.flowfile(pipeline)
    proj.write("raw/S01.csv", "a,b\n1,2\n" * 1000)  # its outputs are blobs; the others live in their entries
    proj.write("raw/S02.csv", "c,d\n3,4\n")
    return proj


def contents(proj: Project) -> Dict[str, bytes]:
    return {rel: (proj.root / rel).read_bytes() for rel in OUTPUTS}


def notices(result) -> List[str]:
    return [e["message"] for e in result.of_kind("notice")]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "shared-cache"


def test_a_second_clone_runs_nothing_and_has_identical_outputs(tmp_path: Path, cache: Path) -> None:
    first, second = clone(tmp_path, "first"), clone(tmp_path, "second")
    built = first.json_run("--cache", str(cache))
    assert built.returncode == 0 and sorted(built.ran) == sorted(RESTORABLE + ["upload"]), built
    again = second.json_run("--cache", str(cache))
    assert again.returncode == 0, again
    assert again.ran == ["upload"]  # cache = false: it runs
    assert again.tasks_with("restored") == sorted(RESTORABLE)
    assert notices(again) == []
    assert contents(second) == contents(first)
    assert os.access(second.path("dist/tool.sh"), os.X_OK)
    finished = again.finished_event("tables")
    assert finished["message"] == f"restored from cache (produced by run {built.run_id} on host {os.uname().nodename})"
    assert again.one("run_finished")["counts"]["restored"] == 4
    # Restored is done: the next run has nothing to do, and the audit trail holds.
    assert second.json_run("--cache", str(cache)).ran == []
    verify = second.run("audit", "verify")
    assert verify.returncode == 0, verify
    lineage = second.run("lineage", "dist/tool.sh")
    assert lineage.returncode == 0, lineage
    assert f"restored from cache (produced by run {built.run_id} on host {os.uname().nodename})" in lineage.stdout
    tree = json.loads(second.run("lineage", "--json", "build/tables/").stdout)
    restored = tree["produced_by"]["restored_from"]
    assert restored["run"] == built.run_id and restored["task"] == "tables" and restored["cache"] == str(cache)
    log = json.loads(second.run("log", again.run_id, "--json").stdout)
    tables = next(a for a in log["attempts"] if a["task"] == "tables")
    assert tables["status"] == "restored" and tables["restored_from"]["host"] == os.uname().nodename
    assert tables["outputs"]["build/count.txt"] == hash_file(first.path("build/count.txt"))  # the hashes restored


def test_restored_is_reported_by_every_reporter(tmp_path: Path, cache: Path) -> None:
    clone(tmp_path, "first").run("run", "--cache", str(cache))
    second = clone(tmp_path, "second")
    plain = second.run("run", "--progress", "plain", "--cache", str(cache), "--junit-xml", "junit.xml")
    assert plain.returncode == 0, plain
    assert any(line.startswith("cached") and "tables" in line and "restored from cache (produced by run" in line
               for line in plain.lines), plain
    assert "done: 1 ok, 4 restored" in plain.stdout
    junit = second.read("junit.xml")
    assert '<testcase classname="tables" name="tables"' in junit and "restored from cache (produced by run" in junit
    assert "<failure" not in junit and "<skipped" not in junit.split('name="tables"')[1].split("</testcase>")[0]
    # The live tree's last frame (a terminal is not needed to draw it).
    third = clone(tmp_path, "third")
    tree = third.run("run", "--progress", "tree", "--cache", str(cache))
    assert tree.returncode == 0 and "restored from cache" in tree.stdout and "4 restored" in tree.stdout, tree


def test_downstream_of_a_restored_task_sees_ordinary_outputs(tmp_path: Path, cache: Path) -> None:
    first = clone(tmp_path, "first")
    first.run("run", "--cache", str(cache))
    # Only the first stage is in the cache for the second clone's inputs: an edit below it reruns the rest,
    # which then read the restored files as inputs (and early cutoff applies to what follows).
    second = clone(tmp_path, "second", PIPELINE.replace("wc -l build/S0*.csv", "wc -l build/S01.csv build/S02.csv"))
    result = second.json_run("--cache", str(cache))
    assert result.returncode == 0, result
    assert result.tasks_with("restored") == ["extract:S01", "extract:S02", "tool"]  # tool: same input bytes
    assert sorted(result.ran) == ["tables", "upload"]


def test_options_say_when_the_cache_is_used(tmp_path: Path, cache: Path) -> None:
    first = clone(tmp_path, "first")
    assert first.run("run", "--cache", str(cache), "--cache-mode", "read").returncode == 0
    assert not cache.exists() or not list(cache.rglob("*.json"))  # read: nothing stored
    first.run("clean")
    assert first.run("run", "--cache", str(cache), "--cache-mode", "write").returncode == 0
    second = clone(tmp_path, "second")
    written = second.json_run("--cache", str(cache), "--cache-mode", "write")
    assert written.tasks_with("restored") == [] and len(written.ran) == 5  # write: never restored
    # FLOWMAKE_CACHE, then [flow] cache (relative to the project root).
    third = clone(tmp_path, "third")
    assert third.json_run(env={"FLOWMAKE_CACHE": str(cache)}).tasks_with("restored") == sorted(RESTORABLE)
    fourth = clone(tmp_path, "fourth", f'[flow]\ncache = "../{cache.name}"\n' + PIPELINE)
    assert fourth.json_run().tasks_with("restored") == sorted(RESTORABLE)
    bad = fourth.run("run", "--cache-mode", "sometimes")
    assert bad.returncode == 2 and "unknown --cache-mode 'sometimes'" in bad.stderr


def test_always_tasks_and_cache_false_never_use_it(tmp_path: Path, cache: Path) -> None:
    pipeline = PIPELINE + '\n[tasks.stamp]\ninputs = ["raw/S01.csv"]\noutputs = ["stamp.txt"]\nrun = "date +%N > stamp.txt"\nalways = true\n'
    clone(tmp_path, "first", pipeline).run("run", "--cache", str(cache))
    result = clone(tmp_path, "second", pipeline).json_run("--cache", str(cache))
    assert "stamp" in result.ran and "upload" in result.ran
    keys = {parse_entry(p.read_bytes(), p.stem).produced.task for p in (cache / "v1" / "entries").rglob("*.json")}
    assert keys == set(RESTORABLE)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing"])
def test_a_damaged_blob_is_a_warning_the_task_runs_and_the_entry_is_repaired(tmp_path: Path, cache: Path,
                                                                               damage: str) -> None:
    first = clone(tmp_path, "first")
    first.run("run", "--cache", str(cache))
    blob = cache / blob_path(hash_file(first.path("build/S01.csv")))
    if damage == "corrupt":
        blob.write_bytes(b"x" * blob.stat().st_size)
    elif damage == "truncated":
        blob.write_bytes(blob.read_bytes()[:2])
    else:
        blob.unlink()
    second = clone(tmp_path, "second")
    result = second.json_run("--cache", str(cache))
    assert result.returncode == 0, result
    warned = [m for m in notices(result) if "cache entry" in m]
    assert "(extract:S01)" in warned[0] and damage in warned[0], result
    # build/S01.csv is also build/tables/S01.csv: one blob in two entries. Whether `tables` finds it
    # repaired already depends on how far extract:S01's store (on its own thread) has come.
    assert len(warned) == 1 + ("tables" in result.ran), result
    assert sorted(result.ran) == ["extract:S01"] + (["tables"] if len(warned) == 2 else []) + ["upload"]
    assert contents(second) == contents(first)
    third = clone(tmp_path, "third")
    repaired = third.json_run("--cache", str(cache))
    assert repaired.tasks_with("restored") == sorted(RESTORABLE) and notices(repaired) == []


def test_a_half_written_entry_is_a_miss(tmp_path: Path, cache: Path) -> None:
    first = clone(tmp_path, "first")
    first.run("run", "--cache", str(cache))
    # What a writer killed before its rename leaves: the entry under its temporary name only.
    for entry in (cache / "v1" / "entries").rglob("*.json"):
        os.rename(entry, f"{entry}.tmp-999-dead")
    result = clone(tmp_path, "second").json_run("--cache", str(cache))
    assert result.returncode == 0 and result.tasks_with("restored") == [] and notices(result) == []


def test_an_unreachable_cache_is_one_warning_and_bad_urls_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    proj = clone(tmp_path, "first")
    result = proj.json_run("--cache", str(tmp_path / "a-file"))
    assert result.returncode == 0 and len(result.ran) == 5, result
    assert len(notices(result)) == 1 and "goes on without the cache" in notices(result)[0]
    bad = proj.run("run", "--cache", "nosuch://bucket/x")
    assert bad.returncode == 2 and "unknown scheme 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
    # Also on a run with nothing to do (the no-op path leaves URLs to the full path).
    bad = proj.run("run", "--cache", "nosuch://bucket/x", "--progress", "plain")
    assert bad.returncode == 2, bad


def test_two_runs_writing_the_same_entries_at_once(tmp_path: Path, cache: Path) -> None:
    many = "\n".join(f'[tasks.t{i}]\ninputs = ["raw/S01.csv"]\noutputs = ["out/{i}.txt"]\n'
                     f'run = "head -c 200000 /dev/zero | tr \\"\\\\\\\\0\\" x > out/{i}.txt"\n' for i in range(30))
    a, b = clone(tmp_path, "a", many), clone(tmp_path, "b", many)
    procs = [p.popen("run", "--progress", "json", "--cache", str(cache)) for p in (a, b)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    backend = DirBackend(str(cache))
    # Each run wrote its 30 entries as one pack (cache/packs.py): the same 30 keys, every entry whole.
    assert stats(backend)["entries"] == 30 and not list(cache.rglob("*.tmp-*"))
    units = list_cache(backend).entries
    assert len(units) == 2 and all(len(entries_in(backend, p) or []) == 30 for p in units)
    third = clone(tmp_path, "third", many).json_run("--cache", str(cache))
    assert len(third.tasks_with("restored")) == 30 and notices(third) == []


def test_gc_under_a_concurrent_run(tmp_path: Path, cache: Path) -> None:
    # One blob (the same 20 kB) shared by every entry: gc takes it with the last entry, as writers need it.
    many = "\n".join(f'[tasks.t{i}]\ninputs = ["raw/S01.csv"]\noutputs = ["out/{i}.txt"]\n'
                     f'run = "head -c 20000 raw/S01.csv > out/{i}.txt"\n' for i in range(60))
    proj = clone(tmp_path, "a", many)
    run = proj.popen("run", "--progress", "json", "-j", "2", "--cache", str(cache))
    rounds = 0
    while run.poll() is None or rounds == 0:
        gc = subprocess.run(FLOWMAKE + ["cache", "gc", "--max-size", "100", "--cache", str(cache)],
                            cwd=str(proj.root), env=proj.env(), capture_output=True, text=True, timeout=60)
        assert gc.returncode == 0, gc.stderr
        rounds += 1
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    backend = DirBackend(str(cache))
    for path in list_cache(backend).entries:  # entries of their own, and packs (cache/packs.py)
        for entry in entries_in(backend, path) or []:
            assert all(backend.exists(blob_path(b.hash)) for b in entry.blobs.values()), path
    # Whatever gc left is whole: a clone restores it or runs, never fails.
    other = clone(tmp_path, "b", many).json_run("--cache", str(cache))
    assert other.returncode == 0 and [m for m in notices(other) if "cache entry" in m] == []


def test_a_cache_that_does_not_answer_is_one_warning_not_a_hang(tmp_path: Path, cache: Path) -> None:
    clone(tmp_path, "first").run("run", "--cache", str(cache))
    # Every entry replaced by a FIFO no one writes: opening one blocks for ever.
    for entry in list((cache / "v1" / "entries").rglob("*.json")):
        entry.unlink()
        os.mkfifo(entry)
    second = clone(tmp_path, "second")
    result = second.json_run("--cache", str(cache), env={"FLOWMAKE_CACHE_TIMEOUT": "1"}, timeout=60)
    assert result.returncode == 0 and len(result.ran) == 5, result
    assert notices(result) == [f"cache {cache}: did not answer within 1s; this run goes on without the cache"]
    bad = second.run("run", "-B", "--cache", str(cache), env={"FLOWMAKE_CACHE_TIMEOUT": "soon"})
    assert bad.returncode == 2 and "FLOWMAKE_CACHE_TIMEOUT" in bad.stderr


def test_what_a_killed_restore_left_is_cleaned_up_by_the_next(tmp_path: Path, cache: Path) -> None:
    clone(tmp_path, "first").run("run", "--cache", str(cache))
    second = clone(tmp_path, "second")
    second.write("build/.count.txt.flowmake-restore-0badf00d", "half a file")
    second.write("build/.tables.flowmake-restore-0badf00d/S01.csv", "half a tree")
    result = second.json_run("--cache", str(cache))
    assert result.tasks_with("restored") == sorted(RESTORABLE)
    assert sorted(p.name for p in second.path("build").iterdir()) == ["S01.csv", "S02.csv", "count.txt", "tables"]
