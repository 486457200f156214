"""A damaged state database (a disk fault, a bad copy): never exit 70.

The auditor's commands report the damage (`audit verify` as a failed
verification, the others as exit 2 with how to recover) and leave the file
where it is; a run or `status` sets it aside and goes on as a first run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import List

import pytest
from conftest import Project, shortcut_test, status_json

PAGE = 4096


def built(project: Project, runs: int = 15) -> None:
    project.flowfile("""
        [tasks.a]
        inputs = ["in.txt"]
        outputs = ["out.txt"]
        run = "cat in.txt > out.txt"
    """)
    for i in range(runs):
        project.write("in.txt", f"row {i}\n")
        result = project.json_run()
        assert result.returncode == 0, result


def damage(project: Project, *, journal_leaves: slice = slice(None), everything: bool = False) -> Path:
    """Fold the WAL into the file, then overwrite the cell content of some pages.

    Page headers and cell pointers stay, so SQLite opens the file and counts
    rows; it finds the damage only when it reads a record, as with a real
    fault in the middle of a file. `everything`: every page but the first
    (the header and schema); else the chosen leaf pages of the journal.
    """
    db = project.path(".flowmake/state.db")
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    try:
        leaves = [n for (n,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'journal' AND pagetype = 'leaf' ORDER BY pageno")]
    except sqlite3.OperationalError:
        pytest.skip("this Python's SQLite has no dbstat table to find the journal's pages")
    finally:
        conn.close()
    assert len(leaves) >= 4, leaves  # enough records that sound pages lie on both sides of the damage
    data = bytearray(db.read_bytes())
    pages = range(2, len(data) // PAGE + 1) if everything else leaves[journal_leaves]
    for page in pages:
        start = (page - 1) * PAGE
        data[start + 100: start + PAGE - 100] = b"\xff" * (PAGE - 200)
    db.write_bytes(bytes(data))
    for side in ("state.db-wal", "state.db-shm"):
        project.path(".flowmake/" + side).unlink(missing_ok=True)
    return db


def aside_files(project: Project) -> List[Path]:
    return sorted(p for p in project.path(".flowmake").glob("state.db.unreadable-*")
                  if not p.name.endswith(("-wal", "-shm")))  # its side files move with it


def no_crash(result) -> None:
    assert result.returncode != 70, result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result


def test_audit_verify_of_a_damaged_state_fails_verification_naming_the_file_and_what_was_checked(
        project: Project) -> None:
    built(project)
    damage(project, journal_leaves=slice(1, 3))
    result = project.run("audit", "verify")
    no_crash(result)
    assert result.returncode == 1, result
    assert "audit: FAILED" in result.stderr and "state.db is damaged" in result.stderr, result
    assert "could not be read" in result.stderr and "records were checked before the damage" in result.stderr
    checked = int(result.stderr.split("audit: ")[2].split(" records")[0])
    assert checked > 0, result  # the sound records before the damage were checked
    assert aside_files(project) == []  # the evidence stays where it is


def test_audit_export_of_a_damaged_state_writes_every_readable_record_and_exits_2(project: Project) -> None:
    built(project)
    total = 3 * 15  # run, attempt and run_end records of 15 runs
    damage(project, journal_leaves=slice(1, 3))
    result = project.run("audit", "export", "--format", "json", "-o", "trail.json")
    no_crash(result)
    assert result.returncode == 2, result
    assert "exported only the" in result.stderr and "state.db is damaged" in result.stderr, result
    records = json.loads(project.read("trail.json"))["records"]
    assert 0 < len(records) < total, len(records)
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)


@pytest.mark.parametrize("command", [["log"], ["log", "--json"], ["lineage", "out.txt"], ["audit", "verify"]])
def test_reading_commands_on_a_wholly_damaged_state_say_so_with_how_to_recover(
        project: Project, command: List[str]) -> None:
    built(project)
    damage(project, everything=True)
    result = project.run(*command)
    no_crash(result)
    expected = 1 if command == ["audit", "verify"] else 2
    assert result.returncode == expected, result
    assert "state.db" in result.stderr and "damaged" in result.stderr, result
    assert "hint:" in result.stderr and "audit export" in result.stderr, result
    assert aside_files(project) == []


@pytest.mark.parametrize("way", [pytest.param("no-op-fast-path", marks=shortcut_test), "full-path", "status"])
def test_a_run_on_a_damaged_state_sets_it_aside_and_goes_on_as_a_first_run(project: Project, way: str) -> None:
    built(project)
    snapshot = project.path(".flowmake/noop.snapshot")
    if way == "no-op-fast-path":
        time.sleep(2.1)  # past the racy window: the next no-op vouches for in.txt by its stat
        assert project.json_run().started == []
        assert snapshot.exists()
    else:  # without the no-op snapshot the run opens the state itself
        snapshot.unlink(missing_ok=True)
    db = damage(project, everything=True)
    damaged_bytes = db.read_bytes()
    args = ["status", "--json"] if way == "status" else ["run", "--progress", "json"]
    result = project.run(*args)
    no_crash(result)
    assert result.returncode == 0, result
    assert "warning" in result.stderr and "damaged" in result.stderr and "unreadable-" in result.stderr, result
    (aside,) = aside_files(project)
    assert aside.read_bytes() == damaged_bytes  # kept as it was, never deleted
    if way == "status":
        assert status_json(result)["a"]["state"] == "stale", result
        return
    if way == "full-path":
        assert result.ran == ["a"], result  # nothing is known any more: it runs again
    # (with the no-op snapshot, whose stats still prove `a` fresh, it need not)
    assert project.read("out.txt") == "row 14\n"
    again = project.json_run()
    assert again.returncode == 0 and again.started == [], again
    project.write("in.txt", "row after the damage\n")
    edited = project.json_run()
    assert edited.returncode == 0 and edited.ran == ["a"], edited
    assert project.read("out.txt") == "row after the damage\n"
    verify = project.run("audit", "verify")
    assert verify.returncode == 0, verify
