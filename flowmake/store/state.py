"""Everything flowmake knows, in `.flowmake/state.db` (SQLite, WAL): the State.

Four kinds of records: the stat cache of file hashes, the trace of each
task's last success (what the rebuilder compares against), the run and
attempt history (the audit trail, journal.py), and the runs in progress
(so that a later run can end the orphans of a killed one). The file itself,
its schema and its upgrades are database.py's; the lazy maps of the traces
and the stat cache are rows.py's.

Crash safety comes from ordering, not from cleanup: a task's trace is
replaced only in the transaction that records its success, and freshness
compares the outputs' content with that trace. A flowmake killed at any
moment therefore leaves the old trace, against which whatever the killed
task half-wrote shows as changed, so the task runs again. The database is a
cache of facts: an unreadable or incompatible one is set aside (never
deleted) and rebuilt.
"""

from __future__ import annotations

import json
import os
import sqlite3

from ..errors import StateDamagedError
from ..layout import STATE_DIR
from ..model import INVALIDATED, AttemptRecord, RunRecord, Trace
from ..records import TYPE_CHECKING
from . import journal as trail
from .database import (
    DB_NAME,
    StateError,
    connect_existing,
    create,
    damaged_hint,
    ensure_state_dir,
    is_damage,
    set_aside,
    state_dir,
)
from .hashing import StatEntry
from .journal import ChainReport, JournalEntry
from .rows import LazyJSON, Rows

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

    T = TypeVar("T")


def _healing(method: Callable[..., T]) -> Callable[..., T]:
    """Run a State method; on damage, heal (a run) or raise StateDamagedError (a reading command)."""

    def guarded(self: "State", *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            self._damaged(exc)
            return method(self, *args, **kwargs)  # on the new, empty database

    guarded.__name__ = method.__name__
    guarded.__doc__ = method.__doc__
    return guarded


_keep_open_until_exit = False
_kept_open: List[sqlite3.Connection] = []


def keep_open_until_exit() -> None:
    """The process ends with os._exit after the command (flowmake's own `run`): see State.close."""
    global _keep_open_until_exit
    _keep_open_until_exit = True


class State:
    def __init__(self, conn: sqlite3.Connection, identity: str, path: str | Path, *,
                 heal: Optional[Callable[[str], None]] = None) -> None:
        self._conn = conn
        self.path = path
        # Damage found while in use: with `heal` (a warning sink) the file is
        # set aside and the work goes on against a new database, as a first
        # run would (everything reruns: safe); without it, StateDamagedError.
        self._heal = heal
        self._begun: Optional[Tuple[dict, bool]] = None  # this run's record, replayed into a new database
        # When this database was created: one set aside and started over gets
        # a new identity, so a no-op snapshot made against the old one is void.
        self.identity = identity
        self._empty: set = set()  # tables known to hold no row: nothing to look up

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(cls, root: Path, *, warn: Callable[[str], None]) -> "State":
        """Open (creating if needed) the project's state; set aside a bad one."""
        directory = ensure_state_dir(root)
        path = directory / DB_NAME
        if path.exists():
            try:
                state = cls(*connect_existing(path), path, heal=warn)
                # Walk the two tables every run reads, so that damage shows here
                # (and the database is set aside) rather than mid-run; counting
                # visits every page without building 30,000 rows.
                for table in ("files", "traces"):
                    if state._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0:
                        state._empty.add(table)
                return state
            except (sqlite3.DatabaseError, StateError) as exc:
                aside = set_aside(path)
                warn(
                    f"state database {path} could not be used ({exc}); moved it to {aside.name} "
                    "and starting over: every task runs once more"
                )
        state = cls(*create(path), path, heal=warn)
        state._empty.update(("files", "traces"))
        return state

    @classmethod
    def open_for_reading(cls, root: Path) -> "State":
        """Open the state for a command that reads history (log, lineage, audit).

        Unlike `open`, a damaged database is never set aside here: it is the
        evidence. It raises StateDamagedError (exit 2, or a failed `audit
        verify`) naming the file and how to recover.
        """
        path = state_dir(root) / DB_NAME
        if not path.exists():
            return cls.open(root, warn=lambda message: None)
        try:
            return cls(*connect_existing(path), path)
        except (sqlite3.DatabaseError, StateError) as exc:
            raise StateDamagedError(f"the state database {path} cannot be read ({exc})",
                                    hint=damaged_hint(path)) from None

    def _damaged(self, exc: BaseException) -> None:
        if self._heal is None:
            raise StateDamagedError(f"the state database {self.path} is damaged ({exc})",
                                    hint=damaged_hint(self.path)) from None
        warn, self._heal = self._heal, None  # damaged again right after: give up rather than loop
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        from pathlib import (
            Path as _Path,  # the damaged path only: pathlib stays off the no-op path
        )

        path = _Path(self.path)
        aside = set_aside(path)
        warn(f"state database {path} is damaged ({exc}); moved it to {aside.name} and starting over: "
             "every task runs once more")
        self._conn, self.identity = create(path)
        self._empty = {"files", "traces"}
        if self._begun is not None:
            body, starts_tasks = self._begun
            self._write_run_start(body, starts_tasks=starts_tasks)
        self._heal = warn

    @_healing
    def _fetch(self, sql: str, params: tuple = (), *, one: bool = False) -> Any:
        """One query for the lazy row maps, with the same damage handling as the methods."""
        cursor = self._conn.execute(sql, params)
        return cursor.fetchone() if one else cursor.fetchall()

    @classmethod
    def open_existing(cls, root: str | Path) -> "State":
        """Open a database that must already exist and be sound; StateError otherwise.

        For the no-op fast path, which leaves every repair to the full path.
        """
        path = os.path.join(root, STATE_DIR, DB_NAME)
        if not os.path.exists(path):
            raise StateError("no state database")
        try:
            return cls(*connect_existing(path), path)
        except sqlite3.DatabaseError as exc:
            raise StateError(str(exc)) from None

    def close(self, *, last: bool = False) -> None:
        """Close the connection; `last`: this process's last use of the state.

        Then, when the process ends at once (keep_open_until_exit), the
        connection is left to the exit: closing it would checkpoint the WAL
        into the database with two fsyncs and delete it, which the next
        run's first write makes again (together 1-3 ms of every run). Every
        transaction is committed by then, so this is a kill -9 that loses
        nothing; the next connection reads the WAL (kept under ~4 MB by
        SQLite's automatic checkpoints).
        """
        if last and _keep_open_until_exit:
            _kept_open.append(self._conn)
            return
        self._conn.close()

    # -- reading -----------------------------------------------------------

    def stat_cache(self) -> Mapping[str, StatEntry]:
        """The stat cache, each entry as it is when first looked up (callers do not mutate it)."""
        return Rows(self._fetch, "SELECT path, size, mtime_ns, ctime_ns, inode, hash, reference_ns FROM files",
                     "path", lambda r: StatEntry(r[1], r[2], r[3], r[4], r[5], r[6]), empty="files" in self._empty)

    def traces(self) -> Mapping[str, Trace]:
        """Traces, each as it is when first looked up: a build looks a task's up before it runs it."""
        return Rows(self._fetch, "SELECT task, fingerprint, command_hash, env, inputs, outputs, run_id FROM traces",
                     "task", lambda r: Trace(r[0], r[1], r[2], LazyJSON(r[3]), LazyJSON(r[4]), LazyJSON(r[5]), r[6]),
                     empty="traces" in self._empty)

    @_healing
    def unfinished_runs(self) -> List[str]:
        """Ids of the runs that may have started tasks and did not finish: killed, or running now."""
        return [row[0] for row in self._conn.execute("SELECT DISTINCT run_id FROM running")]

    @_healing
    def runs(self, limit: Optional[int] = None) -> List[RunRecord]:
        """Recorded runs, newest first."""
        sql = "SELECT seq, run_id, body FROM journal WHERE kind = 'run' ORDER BY run_id DESC"
        starts = list(self._conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")))
        ends: Dict[str, dict] = {}
        if starts:
            oldest = starts[-1][1]
            for seq, run_id, body in self._conn.execute(
                "SELECT seq, run_id, body FROM journal WHERE kind = 'run_end' AND run_id >= ?", (oldest,)
            ):
                ends[run_id] = trail.decode(seq, body, trail.run_end_from_json)
        return [trail.decode(seq, body, lambda d, end=ends.get(run_id, {}): trail.run_from_json(d, end))
                for seq, run_id, body in starts]

    @_healing
    def run_ids(self) -> List[str]:
        return [r[0] for r in self._conn.execute("SELECT run_id FROM journal WHERE kind = 'run' ORDER BY run_id DESC")]

    @_healing
    def attempts(self, run_id: str) -> List[AttemptRecord]:
        rows = self._conn.execute(
            "SELECT seq, body FROM journal WHERE run_id = ? AND kind = 'attempt' ORDER BY seq", (run_id,)
        )
        return [trail.decode(seq, body, trail.attempt_from_json) for seq, body in rows]

    @_healing
    def newest_run_by_task(self) -> Dict[str, str]:
        """Each task with a recorded attempt -> the newest run that has one."""
        rows = self._conn.execute("SELECT task, MAX(run_id) FROM journal WHERE kind = 'attempt' GROUP BY task")
        return {task: run_id for task, run_id in rows if task is not None}

    @_healing
    def attempts_writing(self, paths: Sequence[str]) -> List[AttemptRecord]:
        """Successful attempts that recorded any of these output paths, newest first."""
        found: List[AttemptRecord] = []
        wanted = set(paths)
        for path in wanted:
            rows = self._conn.execute(
                "SELECT seq, body FROM journal WHERE kind = 'attempt' AND instr(body, ?) > 0 ORDER BY seq DESC",
                (json.dumps(path),),
            )
            for seq, body in rows:
                record = trail.decode(seq, body, trail.attempt_from_json)
                if record.status in ("ok", "restored") and wanted.intersection(record.outputs):
                    found.append(record)
        found.sort(key=lambda a: a.finished, reverse=True)
        return found

    @_healing
    def journal(self) -> List[JournalEntry]:
        return trail.entries(self._conn)

    def readable_journal(self) -> Tuple[List[JournalEntry], Optional[str]]:
        """Every journal record the file still gives back, and what could not be read (None: all)."""
        return trail.readable(self._conn, self.path)

    def verify_journal(self) -> ChainReport:
        """Recompute the hash chain (a damaged file fails too): `flowmake audit verify`."""
        return trail.verify(*self.readable_journal())

    # -- writing -----------------------------------------------------------

    @_healing
    def begin_run(self, run: RunRecord, *, starts_tasks: bool = True) -> None:
        """The run's record; one that may start tasks is also listed in `running` until it finishes.

        One row per run, not per task: its tasks carry the run's id in their
        environment, which is how a later run finds them (runner.end_orphans)
        without a transaction per task start.
        """
        body = trail.run_to_json(run)
        self._write_run_start(body, starts_tasks=starts_tasks)
        self._begun = (body, starts_tasks)

    def _write_run_start(self, body: dict, *, starts_tasks: bool) -> None:
        with self._conn:
            trail.append(self._conn, "run", body["id"], None, body)
            if starts_tasks:
                self._conn.execute("INSERT OR REPLACE INTO running (pid, run_id, task) VALUES (?, ?, '')",
                                   (os.getpid(), body["id"]))

    @_healing
    def finish_run(self, run_id: str, *, finished: float, result: str,
                   skipped: Optional[Mapping[str, str]] = None) -> None:
        """The run's end; `skipped`: for a run that did not succeed, each task it did not start and why.

        With it, a task of that run with no attempt and not skipped was fresh.
        A successful run skips nothing, so its record stays as small as before.
        """
        body: Dict[str, object] = {"finished": finished, "result": result}
        if skipped is not None:
            body["skipped"] = dict(skipped)
        with self._conn:
            trail.append(self._conn, "run_end", run_id, None, body)
            self._conn.execute("DELETE FROM running WHERE run_id = ?", (run_id,))

    @_healing
    def record_schedule(self, body: Mapping[str, object], *, record_id: str) -> None:
        """A scheduler's own record: it started or stopped, or a slot was skipped or missed (docs/schedules.md)."""
        with self._conn:
            trail.append(self._conn, "schedule", record_id, None, body)

    @_healing
    def schedule_records(self, *, since: str = "") -> List[dict]:
        """Every scheduler record (oldest first) and every run a schedule started, as one list of bodies.

        A run appears as {"event": "run", "run_id", "result", **its trigger}; `since` is a record id
        (a sortable time) to read from.
        """
        rows = self._conn.execute(
            "SELECT seq, kind, run_id, body FROM journal WHERE (kind = 'schedule' OR (kind = 'run' AND "
            "instr(body, '\"trigger\":') > 0)) AND run_id >= ? ORDER BY seq", (since,))
        out: List[dict] = []
        for seq, kind, run_id, body in rows:
            data = trail.decode(seq, body, lambda d: d)
            if kind == "schedule":
                out.append(dict(data, id=run_id))
            elif isinstance(data.get("trigger"), dict):
                out.append(dict(data["trigger"], event="run", run_id=run_id, id=run_id))
        return out

    @_healing
    def run_results(self, run_ids: Sequence[str]) -> Dict[str, str]:
        """The result of each of these runs that has finished."""
        out: Dict[str, str] = {}
        for run_id in run_ids:
            row = self._conn.execute("SELECT seq, body FROM journal WHERE kind = 'run_end' AND run_id = ?",
                                     (run_id,)).fetchone()
            if row is not None:
                out[run_id] = trail.decode(row[0], row[1], lambda d: d["result"])
        return out

    @_healing
    def record_prune(self, run_id: str, pruned: Sequence[str], *, when: float) -> None:
        """Logs of these runs were deleted on purpose: verification must not flag them."""
        with self._conn:
            trail.append(self._conn, "prune", run_id, None, {"time": when, "runs": list(pruned)})

    @_healing
    def record_attempts(self, finished: Sequence[Tuple[AttemptRecord, Optional[Trace]]],
                        stat_entries: Mapping[str, StatEntry]) -> None:
        """One transaction for finished attempts: history, trace (a new one on success, else invalid), cache.

        Each kind of row goes in with one executemany. A task whose last
        attempt here failed has its trace invalidated after the new traces
        are in, as if done in order; an invalidation followed by a new trace
        is left out, the new trace replacing the row anyway.
        """
        self._empty.clear()
        journal = [("attempt", attempt.run_id, attempt.task, trail.attempt_to_json(attempt)) for attempt, _ in finished]
        traces = []
        invalid: Dict[str, bool] = {}  # task -> its last attempt here left no trace
        dumps = trail.dumps
        for attempt, trace in finished:
            invalid[attempt.task] = trace is None
            if trace is not None:
                traces.append((trace.task, trace.fingerprint, trace.command_hash, dumps(trace.env),
                               dumps(trace.inputs), dumps(trace.outputs), trace.run_id))
        with self._conn:
            trail.append_many(self._conn, journal)
            if traces:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO traces (task, fingerprint, command_hash, env, inputs, outputs, run_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", traces)
            invalidated = [(INVALIDATED, task) for task, none in invalid.items() if none]
            if invalidated:
                self._conn.executemany("UPDATE traces SET fingerprint = ? WHERE task = ?", invalidated)
            _save_stat_entries(self._conn, stat_entries)

    @_healing
    def save_stat_entries(self, entries: Mapping[str, StatEntry]) -> None:
        if entries:
            self._empty.clear()
            with self._conn:
                _save_stat_entries(self._conn, entries)

    @_healing
    def forget_runs(self, run_ids: Iterable[str]) -> None:
        """These runs' orphans are ended: no later run need look for them again."""
        with self._conn:
            self._conn.executemany("DELETE FROM running WHERE run_id = ?", [(r,) for r in run_ids])

    @_healing
    def forget_tasks(self, tasks: Sequence[str], paths: Sequence[str]) -> None:
        """Drop the traces of tasks (and cached hashes of their outputs): `clean`."""
        with self._conn:
            self._conn.executemany("DELETE FROM traces WHERE task = ?", [(t,) for t in tasks])
            self._conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])
            for p in paths:
                if p.endswith("/"):
                    self._conn.execute("DELETE FROM files WHERE substr(path, 1, ?) = ?", (len(p), p))



def _save_stat_entries(conn: sqlite3.Connection, entries: Mapping[str, StatEntry]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, inode, hash, reference_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(p, e.size, e.mtime_ns, e.ctime_ns, e.inode, e.hash, e.reference_ns) for p, e in entries.items()],
    )


