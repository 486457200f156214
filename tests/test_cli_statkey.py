"""Issue 22.1 through the real CLI: a content change that keeps size, mtime
and inode is still seen, because every stat-keyed shortcut (the hash cache,
the no-op snapshot, the Flowfile load cache) also keys on st_ctime_ns, which
no write and no utime can leave as it was.

Each case first leaves a project fully fresh with trusted stat entries and a
no-op snapshot (the shortcuts that could be fooled), then makes a change the
way `cp -p`, `rsync -t`, `tar x` or `touch -r` of a corrected delivery leaves
it: new bytes, the old size, the old mtime put back.
"""

from __future__ import annotations

import os
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SHORTCUTS_OFF, Project, kinds, shortcut_test

from flowmake.cli.fastpath import try_noop

CHAIN = """\
    [tasks.extract]
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    run = "cp src.txt build/a.txt"

    [tasks.clean]
    inputs = ["build/a.txt"]
    outputs = ["build/b.txt"]
    run = "cat build/a.txt > build/b.txt"
"""


def age_all(root: Path, seconds: float = 30) -> None:
    """Backdate every project file, so the stat cache may trust it at once."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if ".flowmake" not in path.parts and path.is_file():
            os.utime(path, (past, past))


def settled(project: Project, flowfile: str = CHAIN) -> None:
    """Built, aged, and run once more: every entry trusted, the no-op snapshot written."""
    project.flowfile(flowfile)
    project.write("src.txt", "one\n")
    first = project.json_run()
    assert first.returncode == 0 and first.ran == ["clean", "extract"], first
    age_all(project.root)
    again = project.json_run()
    assert again.returncode == 0 and again.ran == [], again
    assert SHORTCUTS_OFF or project.exists(".flowmake/noop.snapshot")


def fast_path_serves(project: Project, capsys: pytest.CaptureFixture) -> bool:
    """Whether the no-op fast path answers a `flowmake run` now (it returns None when it declines)."""
    code = try_noop(["-C", str(project.root), "run", "--progress", "json"])
    capsys.readouterr()
    return code == 0


def rewrite_keeping_stat(path: Path, text: str) -> None:
    """New bytes in place (same inode), same size, the old mtime restored: `touch -r` of a delivery."""
    before = os.stat(path)
    assert len(text.encode()) == before.st_size
    with open(path, "r+") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_an_input_rewritten_in_place_with_its_mtime_restored_reruns(project: Project) -> None:
    settled(project)
    rewrite_keeping_stat(project.path("src.txt"), "two\n")
    rows = project.status()
    assert rows["extract"]["state"] == "stale", rows
    assert {"kind": "input changed", "path": "src.txt"} in [
        {k: r[k] for k in ("kind", "path")} for r in rows["extract"]["reasons"]], rows
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["clean", "extract"], result
    assert project.read("build/b.txt") == "two\n"
    assert project.json_run().ran == []


def test_an_input_deleted_and_recreated_with_the_same_size_and_an_old_mtime_reruns(project: Project) -> None:
    settled(project)
    src = project.path("src.txt")
    before = os.stat(src)
    src.unlink()
    src.write_text("two\n")  # ext4 and tmpfs hand the freed inode straight back
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    rows = project.status()
    assert rows["extract"]["state"] == "stale" and "input changed" in kinds(rows["extract"]["reasons"]), rows
    result = project.json_run()
    assert result.returncode == 0 and result.ran == ["clean", "extract"], result
    assert project.read("build/b.txt") == "two\n"


def test_an_output_edited_in_place_with_its_mtime_put_back_reruns(project: Project) -> None:
    settled(project)
    rewrite_keeping_stat(project.path("build/b.txt"), "XXX\n")
    rows = project.status()
    assert rows["clean"]["state"] == "stale", rows
    assert [(r["kind"], r["path"]) for r in rows["clean"]["reasons"]] == [("output modified", "build/b.txt")]
    result = project.json_run()
    assert result.returncode == 0 and result.ran == ["clean"], result
    assert [(r["kind"], r["path"]) for r in result.reasons("clean")] == [("output modified", "build/b.txt")]
    assert project.read("build/b.txt") == "one\n"


def test_the_flowfile_rewritten_in_place_with_its_mtime_restored_reruns_in_status_and_run(project: Project) -> None:
    settled(project)
    # Same length: `cat` becomes `tac` (one line, so the same bytes come out).
    edited = CHAIN.replace('run = "cat build/a.txt > build/b.txt"', 'run = "tac build/a.txt > build/b.txt"')
    rewrite_keeping_stat(project.path("Flowfile.toml"), textwrap.dedent(edited))
    rows = project.status()
    assert rows["clean"]["state"] == "stale" and kinds(rows["clean"]["reasons"]) == ["command changed"], rows
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["clean"], result  # status and run agree
    assert kinds(result.reasons("clean")) == ["command changed"]
    assert project.json_run().ran == []


def test_an_included_file_rewritten_in_place_with_its_mtime_restored_reruns(project: Project) -> None:
    project.write("tasks.toml", CHAIN)
    settled(project, '[flow]\ninclude = ["tasks.toml"]\n')  # the snapshot vouches for tasks.toml by its stat
    edited = CHAIN.replace('run = "cat build/a.txt > build/b.txt"', 'run = "tac build/a.txt > build/b.txt"')
    rewrite_keeping_stat(project.path("tasks.toml"), textwrap.dedent(edited))
    assert kinds(project.status()["clean"]["reasons"]) == ["command changed"]
    result = project.json_run()
    assert result.returncode == 0 and result.ran == ["clean"], result

def test_a_source_directory_whose_mtime_is_put_back_still_shows_a_deleted_source(project: Project) -> None:
    # The load cache vouches for the sources of an unchanged directory by its stat.
    project.flowfile("""\
        [tasks.copy]
        inputs = ["data/src.txt"]
        outputs = ["out.txt"]
        run = "cp data/src.txt out.txt"
    """)
    project.write("data/src.txt", "one\n")
    project.write("data/other.txt", "x\n")
    past = time.time() - 60
    os.utime(project.path("data"), (past, past))
    assert project.json_run().returncode == 0
    assert project.json_run().ran == []  # the cached load, with data/ stamped
    before = os.stat(project.path("data"))
    project.path("data/src.txt").unlink()
    os.utime(project.path("data"), ns=(before.st_atime_ns, before.st_mtime_ns))
    check = project.run("check")
    assert check.returncode == 2, check
    assert "data/src.txt" in check.stderr, check
    result = project.json_run()
    assert result.returncode == 2 and "data/src.txt" in result.stderr, result


def stat_row(project: Project, path: str) -> tuple:
    conn = sqlite3.connect(str(project.path(".flowmake/state.db")))
    try:
        return conn.execute("SELECT ctime_ns, inode, hash FROM files WHERE path = ?", (path,)).fetchone()
    finally:
        conn.close()


@shortcut_test
@pytest.mark.parametrize("change", ["chmod", "touch-and-restore-mtime"])
def test_a_ctime_only_change_reruns_nothing_and_refreshes_the_entry(
        project: Project, capsys: pytest.CaptureFixture, change: str) -> None:
    settled(project)
    assert fast_path_serves(project, capsys)
    src = project.path("src.txt")
    before = os.stat(src)
    time.sleep(0.02)  # past the file system's timestamp tick, so the ctime moves
    if change == "chmod":
        os.chmod(src, 0o600)
    else:
        os.utime(src, None)
        os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    now = os.stat(src)
    assert now.st_ctime_ns != before.st_ctime_ns and now.st_mtime_ns == before.st_mtime_ns
    assert not fast_path_serves(project, capsys)  # its stat no longer vouches for its content
    assert project.status()["extract"]["state"] == "fresh"
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == [] and result.tasks_with("fresh") == ["clean", "extract"], result
    ctime, inode, _ = stat_row(project, "src.txt")
    assert (ctime, inode) == (now.st_ctime_ns, now.st_ino)  # re-hashed, same content: the entry refreshed
    assert fast_path_serves(project, capsys)  # so the next no-op is the fast path again


# The stat cache of schema version 1, as flowmake made it before the ctime was in the key.
_V1_FILES = """CREATE TABLE files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, hash TEXT NOT NULL, hashed_at_ns INTEGER NOT NULL
) WITHOUT ROWID"""


def test_a_version_1_state_is_upgraded_in_place_keeping_traces_and_journal(project: Project) -> None:
    settled(project)
    db = str(project.path(".flowmake/state.db"))
    conn = sqlite3.connect(db)
    with conn:
        rows = conn.execute("SELECT path, size, mtime_ns, inode, hash, reference_ns FROM files").fetchall()
        conn.execute("DROP TABLE files")
        conn.execute(_V1_FILES)
        conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    journal = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    conn.close()
    project.path(".flowmake/noop.snapshot").unlink(missing_ok=True)  # as a version-1 flowmake's would not be read either
    result = project.json_run()
    assert result.returncode == 0, result
    assert "could not be used" not in result.stderr  # upgraded, not set aside
    assert result.ran == [], result  # every file hashed again, every trace kept: nothing reruns
    assert stat_row(project, "src.txt")[0] == os.stat(project.path("src.txt")).st_ctime_ns
    assert not list(project.path(".flowmake").glob("state.db.unreadable-*"))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
        assert conn.execute("SELECT count(*) FROM journal").fetchone()[0] > journal  # the trail goes on
    finally:
        conn.close()
    verify = project.run("audit", "verify")
    assert verify.returncode == 0, verify
    again = project.json_run()
    assert again.returncode == 0 and again.ran == [], again


def test_a_version_2_state_keeps_its_stat_cache_through_the_upgrade(project: Project) -> None:
    # Version 2 recorded when each file was hashed (system clock); version 3
    # the reference below which an mtime is trusted: the same rule, shifted
    # by the old window, so the upgrade reads no file again.
    settled(project)
    db = str(project.path(".flowmake/state.db"))
    conn = sqlite3.connect(db)
    with conn:
        before = dict(conn.execute("SELECT path, reference_ns FROM files"))
        conn.execute("ALTER TABLE files RENAME COLUMN reference_ns TO hashed_at_ns")
        conn.execute("UPDATE files SET hashed_at_ns = hashed_at_ns + 2000000000")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    project.path(".flowmake/noop.snapshot").unlink(missing_ok=True)  # the full planner, which reads the stat cache
    result = project.json_run()
    assert result.returncode == 0, result
    assert "could not be used" not in result.stderr
    assert result.ran == [], result
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
        after = dict(conn.execute("SELECT path, reference_ns FROM files"))
    finally:
        conn.close()
    assert after == before  # every entry carried over as it was: none was hashed again
