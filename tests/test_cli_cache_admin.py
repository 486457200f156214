"""`flowmake cache stats` and `flowmake cache gc` through the real CLI, and how a command finds its cache."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cachetools import open_session, store_outputs
from conftest import Project


def fill(cache: Path, tmp_path: Path, count: int = 3) -> None:
    for i in range(count):
        p = tmp_path / f"src{i}"
        (p / "out").mkdir(parents=True, exist_ok=True)
        (p / "out" / "o.bin").write_bytes(bytes([i]) * 10_000)
        store_outputs(open_session(str(cache)), p, ["out/o.bin"], fingerprint=f"f{i}")


def test_stats_counts_entries_blobs_and_bytes(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    fill(cache, tmp_path)
    project.flowfile('[tasks.a]\noutputs = ["a"]\nrun = "touch a"\n')
    result = project.run("cache", "stats", "--cache", str(cache), "--json")
    assert result.returncode == 0, result
    st = json.loads(result.stdout)
    assert (st["entries"], st["blobs"]) == (3, 3) and 30_000 < st["bytes"] < 32_000 and st["hit_rate"] is None
    plain = project.run("cache", "stats", "--cache", str(cache))
    assert "entries  3" in plain.stdout and "blobs    3 (3" in plain.stdout


def test_the_flowfile_names_the_cache_relative_to_its_root_and_the_environment_overrides(
        project: Project, tmp_path: Path) -> None:
    fill(project.root / "cachedir", tmp_path, count=2)
    fill(tmp_path / "other", tmp_path, count=1)
    project.flowfile('[flow]\ncache = "cachedir"\n[tasks.a]\noutputs = ["a"]\nrun = "touch a"\n')
    (project.root / "sub").mkdir()
    result = project.run("cache", "stats", "--json", cwd=project.root / "sub")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["entries"] == 2
    result = project.run("cache", "stats", "--json", env={"FLOWMAKE_CACHE": str(tmp_path / "other")})
    assert json.loads(result.stdout)["entries"] == 1


def test_gc_by_age_and_size(project: Project, tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    fill(cache, tmp_path)
    old = time.time() - 40 * 86400
    entries = sorted((cache / "v1" / "entries").rglob("*.json"))
    os.utime(entries[0], (old, old))
    for blob in (cache / "v1" / "blobs").rglob("*"):
        if blob.is_file():
            os.utime(blob, (old, old))
    project.flowfile('[tasks.a]\noutputs = ["a"]\nrun = "touch a"\n')
    result = project.run("cache", "gc", "--older-than", "30d", "--cache", str(cache), "--json")
    assert result.returncode == 0, result
    got = json.loads(result.stdout)
    assert got["removed_entries"] == 1 and got["removed_blobs"] == 1 and got["entries"] == 2
    result = project.run("cache", "gc", "--max-size", "15KB", "--cache", str(cache))
    assert result.returncode == 0 and "removed 1 entries and 1 blobs" in result.stdout, result


def test_bad_input_is_exit_2_with_one_message(project: Project, tmp_path: Path) -> None:
    project.flowfile('[tasks.a]\noutputs = ["a"]\nrun = "touch a"\n')
    cases = [
        (("cache", "stats"), "no cache named"),
        (("cache", "gc", "--cache", str(tmp_path)), "needs --max-size or --older-than"),
        (("cache", "gc", "--max-size", "ten", "--cache", str(tmp_path)), "is not a size"),
        (("cache", "gc", "--older-than", "a month", "--cache", str(tmp_path)), "is not an age"),
        (("cache", "stats", "--cache", "nosuch://bucket/x"), "unknown scheme 'nosuch'"),
    ]
    for args, message in cases:
        result = project.run(*args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result


def test_a_bad_flow_cache_key_points_at_its_line(project: Project) -> None:
    project.flowfile('[flow]\ncache = 3\n[tasks.a]\noutputs = ["a"]\nrun = "touch a"\ncache = "no"\n')
    result = project.run("check")
    assert result.returncode == 2
    assert "key `cache` must be a directory or URL" in result.stderr and "Flowfile.toml:2" in result.stderr
    assert "cache" in result.stderr and "true or false" in result.stderr
