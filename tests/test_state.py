"""The SQLite state: traces survive reopening; a bad database is set aside, never deleted."""

from __future__ import annotations

from pathlib import Path

from flowmake.model import AttemptRecord, Reason, ReasonKind, RunRecord, Trace
from flowmake.store.hashing import StatEntry
from flowmake.store.state import DB_NAME, INVALIDATED, STATE_DIR, State


def open_state(root: Path, warnings: list) -> State:
    return State.open(root, warn=warnings.append)


def attempt(task: str, status: str = "ok") -> AttemptRecord:
    return AttemptRecord(run_id="r1", task=task, attempt=1, status=status, reasons=(Reason(ReasonKind.NEVER_RUN),),
                         command="true", started=1.0, finished=2.0, exit_code=0, inputs={"a": "h"},
                         outputs={"b": "o"}, log=".flowmake/logs/r1/t.log", log_hash="lh")


def test_state_dir_is_created_with_a_gitignore(tmp_path: Path) -> None:
    open_state(tmp_path, []).close()
    assert (tmp_path / STATE_DIR / ".gitignore").read_text() == "*\n"


def test_trace_attempt_and_stat_cache_survive_reopen(tmp_path: Path) -> None:
    s = open_state(tmp_path, [])
    s.begin_run(RunRecord("r1", 1.0, "u", "h", "0.1", "ff", ("run",), ("t",)))
    trace = Trace("t", "fp", "ch", {"TZ": "x"}, {"a": "h"}, {"b": "o"}, "r1")
    s.record_attempts([(attempt("t"), trace)], {"a": StatEntry(1, 2, 5, 3, "h", 4)})
    s.finish_run("r1", finished=3.0, result="success")
    s.close()
    s = open_state(tmp_path, [])
    assert s.traces()["t"] == trace
    assert s.stat_cache()["a"] == StatEntry(1, 2, 5, 3, "h", 4)  # the ctime too
    assert s.unfinished_runs() == []
    (run,) = s.runs()
    assert (run.id, run.result) == ("r1", "success")
    assert s.attempts("r1")[0].reasons[0].kind is ReasonKind.NEVER_RUN


def test_a_run_that_starts_tasks_stays_listed_as_unfinished_until_it_finishes(tmp_path: Path) -> None:
    # A killed run never finishes: the next run finds it here and ends its orphans.
    s = open_state(tmp_path, [])
    s.begin_run(RunRecord("r1", 1.0, "u", "h", "0.1", "ff", ("run",), ("t",)))
    s.begin_run(RunRecord("r2", 2.0, "u", "h", "0.1", "ff", ("run",), ("t",)), starts_tasks=False)
    s.close()
    s = open_state(tmp_path, [])
    assert s.unfinished_runs() == ["r1"]  # r2 (a no-op) starts no task: nothing to look for
    s.finish_run("r1", finished=3.0, result="success")
    assert s.unfinished_runs() == []
    s.begin_run(RunRecord("r3", 4.0, "u", "h", "0.1", "ff", ("run",), ("t",)))
    s.forget_runs(["r3"])
    assert s.unfinished_runs() == []


def test_a_started_attempt_leaves_the_trace_until_its_record(tmp_path: Path) -> None:
    # No write at a task's start: a killed attempt leaves the last success's
    # trace, against which its half-written outputs show as changed.
    s = open_state(tmp_path, [])
    trace = Trace("t", "fp", "ch", {}, {"a": "h"}, {"b": "o"}, "r0")
    s.record_attempts([(attempt("t"), trace)], {})
    s.begin_run(RunRecord("r1", 1.0, "u", "h", "0.1", "ff", ("run",), ("t",)))
    s.close()
    assert open_state(tmp_path, []).traces()["t"] == trace


def test_failed_attempt_leaves_an_invalid_trace(tmp_path: Path) -> None:
    s = open_state(tmp_path, [])
    s.record_attempts([(attempt("t"), Trace("t", "fp", "ch", {}, {}, {}, "r0"))], {})
    s.record_attempts([(attempt("t", "failed"), None)], {})
    assert s.traces()["t"].fingerprint == INVALIDATED


def test_a_batch_of_attempts_ends_as_its_records_in_order_would(tmp_path: Path) -> None:
    # One commit holds many attempts (the recorder batches them): each task's
    # trace is what its last attempt in the batch left, and the journal's
    # chain runs through every record in order.
    s = open_state(tmp_path, [])
    s.record_attempts([(attempt("old"), Trace("old", "fp0", "ch", {}, {}, {}, "r0"))], {})
    ok = Trace("back", "fp1", "ch", {}, {"a": "h"}, {"b": "o"}, "r1")
    s.record_attempts([
        (attempt("back", "failed"), None), (attempt("back")._replace(attempt=2), ok),  # a retry that succeeded
        (attempt("gone"), Trace("gone", "fp2", "ch", {}, {}, {}, "r1")), (attempt("gone", "failed"), None),
        (attempt("old", "failed"), None),
    ], {})
    traces = s.traces()
    assert traces["back"] == ok
    assert traces["gone"].fingerprint == INVALIDATED and traces["gone"].run_id == "r1"
    assert traces["old"].fingerprint == INVALIDATED
    assert [(a.task, a.status) for a in s.attempts("r1")] == [
        ("old", "ok"), ("back", "failed"), ("back", "ok"), ("gone", "ok"), ("gone", "failed"), ("old", "failed")]
    report = s.verify_journal()
    assert report.ok and report.records == 6


def test_corrupt_database_is_set_aside_with_a_warning(tmp_path: Path) -> None:
    open_state(tmp_path, []).close()
    db = tmp_path / STATE_DIR / DB_NAME
    db.write_bytes(b"this is not a database" * 100)
    warnings: list = []
    s = open_state(tmp_path, warnings)
    assert s.traces() == {}
    s.close()
    assert len(warnings) == 1 and "starting over" in warnings[0]
    kept = list((tmp_path / STATE_DIR).glob(DB_NAME + ".unreadable-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not a database")


def test_database_from_unknown_schema_version_is_set_aside(tmp_path: Path) -> None:
    import sqlite3

    open_state(tmp_path, []).close()
    db = tmp_path / STATE_DIR / DB_NAME
    conn = sqlite3.connect(str(db))
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    warnings: list = []
    open_state(tmp_path, warnings).close()
    assert "schema version 999" in warnings[0]


def test_stat_cache_reads_rows_as_looked_up_and_keeps_the_first_read(tmp_path: Path) -> None:
    s = open_state(tmp_path, [])
    s.save_stat_entries({f"f{i}": StatEntry(i, i, i, i, f"h{i}", i) for i in range(3)})
    cache = s.stat_cache()
    assert cache["f1"].hash == "h1" and "f2" in cache and "nope" not in cache and cache.get("nope") is None
    s.save_stat_entries({"f1": StatEntry(9, 9, 9, 9, "changed", 9), "nope": StatEntry(1, 1, 1, 1, "new", 1)})
    # Keys already looked up answer as they first did; the rest are read as they are now.
    assert cache["f1"].hash == "h1" and "nope" not in cache
    assert sorted(cache) == ["f0", "f1", "f2"] and len(cache) == 3
    assert s.stat_cache()["f1"].hash == "changed"
    s.close()


def test_stat_cache_past_the_bulk_threshold_reads_the_whole_table_once(tmp_path: Path, monkeypatch) -> None:
    from flowmake.store.rows import Rows

    monkeypatch.setattr(Rows, "_BULK_AFTER", 3)
    s = open_state(tmp_path, [])
    s.save_stat_entries({f"f{i}": StatEntry(i, i, i, i, f"h{i}", i) for i in range(10)})
    cache = s.stat_cache()
    assert [cache[f"f{i}"].hash for i in range(10)] == [f"h{i}" for i in range(10)]
    assert cache.get("f10") is None and len(cache) == 10
    s.close()


def test_a_new_database_answers_lookups_without_queries_until_it_is_written(tmp_path: Path) -> None:
    s = open_state(tmp_path, [])
    queries: list = []
    s._conn.set_trace_callback(queries.append)
    assert s.stat_cache().get("a") is None and "t" not in s.traces()
    assert queries == []  # a first run looks up every file and task: none is there
    trace = Trace("t", "fp", "ch", {}, {"a": "h"}, {}, "r1")
    s.record_attempts([(attempt("t"), trace)], {"a": StatEntry(1, 2, 5, 3, "h", 4)})
    assert s.traces()["t"] == trace and s.stat_cache()["a"].hash == "h"
    s.close()
    s = open_state(tmp_path, [])
    assert s.traces()["t"] == trace


def _damage_every_page_but_the_first(db: Path) -> None:
    """Cell content overwritten, page headers kept: SQLite opens the file and fails on reading a record."""
    import sqlite3

    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    for start in range(4096, len(data), 4096):
        data[start + 100: start + 4096 - 100] = b"\xff" * (4096 - 200)
    db.write_bytes(bytes(data))


def test_damage_found_in_use_sets_the_file_aside_and_the_run_goes_on_in_a_new_database(tmp_path: Path) -> None:
    s = open_state(tmp_path, [])
    for i in range(30):
        s.begin_run(RunRecord(f"r{i:02}", 1.0, "u", "h", "0.1", "ff", ("run",), ("t",)))
        trace = Trace("t", "fp", "ch", {"TZ": "x"}, {"a": "h"}, {"b": "o"}, f"r{i:02}")
        s.record_attempts([(attempt("t")._replace(run_id=f"r{i:02}"), trace)], {})
        s.finish_run(f"r{i:02}", finished=3.0, result="success")
    s.close()
    db = tmp_path / STATE_DIR / DB_NAME
    _damage_every_page_but_the_first(db)
    warnings: list = []
    s = open_state(tmp_path, warnings)  # opens: the damage is in the records
    assert warnings == []
    s.begin_run(RunRecord("new", 1.0, "u", "h", "0.1", "ff", ("run",), ("t",)))  # reads the journal's head
    assert len(warnings) == 1 and "damaged" in warnings[0], warnings
    assert s.traces().get("t") is None  # nothing known: the task runs again
    s.record_attempts([(attempt("t")._replace(run_id="new"), None)], {})
    s.finish_run("new", finished=3.0, result="success")
    assert [e.kind for e in s.journal()] == ["run", "attempt", "run_end"]  # the new trail starts with this run
    assert s.unfinished_runs() == []
    assert s.verify_journal().ok
    s.close()
    assert len(list((tmp_path / STATE_DIR).glob(DB_NAME + ".unreadable-*"))) == 1


def test_a_reading_open_of_a_damaged_database_raises_and_leaves_it_in_place(tmp_path: Path) -> None:
    import pytest

    from flowmake.errors import StateDamagedError

    s = open_state(tmp_path, [])
    s.begin_run(RunRecord("r1", 1.0, "u", "h", "0.1", "ff", ("run",), ("t",)))
    s.close()
    db = tmp_path / STATE_DIR / DB_NAME
    _damage_every_page_but_the_first(db)
    s = State.open_for_reading(tmp_path)
    with pytest.raises(StateDamagedError, match="damaged"):
        s.runs()
    report = s.verify_journal()
    assert not report.ok and report.damage is not None and report.records == 0
    s.close()
    assert db.exists() and not list((tmp_path / STATE_DIR).glob(DB_NAME + ".unreadable-*"))
