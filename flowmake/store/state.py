"""Everything flowmake knows, in `.flowmake/state.db` (SQLite, WAL).

Four kinds of records: the stat cache of file hashes, the trace of each
task's last success (what the rebuilder compares against), the run and
attempt history (the audit trail), and the runs in progress (so that a
later run can end the orphans of a killed one).

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
import time
from collections import abc

from ..errors import StateDamagedError, TrailDamagedError
from ..layout import STATE_DIR
from ..model import INVALIDATED, AttemptRecord, Reason, ReasonKind, RunRecord, Trace
from ..records import TYPE_CHECKING, NamedTuple
from .fsclock import RACY_WINDOW_NS
from .hashing import HASH_ALGORITHM, StatEntry, hash_text

if TYPE_CHECKING:  # typing and pathlib would cost the no-op path ~6 ms to import (records.py)
    from pathlib import Path
    from typing import (
        Any,
        Callable,
        Dict,
        Iterable,
        Iterator,
        List,
        Mapping,
        Optional,
        Sequence,
        Tuple,
        TypeVar,
    )

    T = TypeVar("T")

DB_NAME = "state.db"
SCHEMA_VERSION = 3  # 2: the stat cache keys on st_ctime_ns too; 3: reference_ns from the file system's clock

_FILES_TABLE = """
CREATE TABLE files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, hash TEXT NOT NULL, reference_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + _FILES_TABLE + """
CREATE TABLE traces (
    task TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, command_hash TEXT NOT NULL,
    env TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, run_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, run_id TEXT NOT NULL, task TEXT,
    body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX journal_by_run ON journal (run_id, kind);
CREATE INDEX journal_by_task ON journal (task) WHERE task IS NOT NULL;
CREATE TABLE running (  -- runs in progress: flowmake's pid, the run, '' (a task's name in older versions)
    pid INTEGER PRIMARY KEY, run_id TEXT NOT NULL, task TEXT NOT NULL
);
"""


GENESIS = "0" * 64  # prev_hash of the first journal record
_PROBE_GIVE_UP = 10_000  # consecutive absent records after which a damaged journal's probe stops


class JournalEntry(NamedTuple):
    seq: int
    kind: str  # "run", "attempt", "run_end", "prune"
    run_id: str
    task: Optional[str]
    body: str  # canonical JSON
    prev_hash: str
    hash: str


class ChainReport(NamedTuple):
    ok: bool
    records: int  # how many were checked
    head: str  # hash of the last good record
    bad: Optional[JournalEntry] = None
    problem: Optional[str] = None
    damage: Optional[str] = None  # records the database could not give back at all (a damaged file)


class StateError(Exception):
    """The database cannot be used (corrupt, or from an unknown version)."""


def _is_damage(exc: BaseException) -> bool:
    """SQLite's word that the file's pages are not what it wrote (a disk fault, a bad copy).

    Corruption (SQLITE_CORRUPT, SQLITE_NOTADB) arrives as the base
    DatabaseError; text that is no longer UTF-8 as an OperationalError from
    the decoder. A locked or full disk (OperationalError) is not damage.
    """
    if type(exc) is sqlite3.DatabaseError:
        return True
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("Could not decode")


def damaged_hint(path: object) -> str:
    return (f"`flowmake audit export -o FILE` saves every record that can still be read; the next `flowmake run` "
            f"moves {path} aside (kept as {DB_NAME}.unreadable-TIME, never deleted) and starts over")


def _healing(method: Callable[..., T]) -> Callable[..., T]:
    """Run a State method; on damage, heal (a run) or raise StateDamagedError (a reading command)."""

    def guarded(self: "State", *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            self._damaged(exc)
            return method(self, *args, **kwargs)  # on the new, empty database

    guarded.__name__ = method.__name__
    guarded.__doc__ = method.__doc__
    return guarded


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def ensure_state_dir(root: Path) -> Path:
    directory = state_dir(root)
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return directory


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
                state = cls(*_connect_existing(path), path, heal=warn)
                # Walk the two tables every run reads, so that damage shows here
                # (and the database is set aside) rather than mid-run; counting
                # visits every page without building 30,000 rows.
                for table in ("files", "traces"):
                    if state._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0:
                        state._empty.add(table)
                return state
            except (sqlite3.DatabaseError, StateError) as exc:
                aside = _set_aside(path)
                warn(
                    f"state database {path} could not be used ({exc}); moved it to {aside.name} "
                    "and starting over: every task runs once more"
                )
        state = cls(*_create(path), path, heal=warn)
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
            return cls(*_connect_existing(path), path)
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
        aside = _set_aside(path)
        warn(f"state database {path} is damaged ({exc}); moved it to {aside.name} and starting over: "
             "every task runs once more")
        self._conn, self.identity = _create(path)
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
            return cls(*_connect_existing(path), path)
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
        return _Rows(self._fetch, "SELECT path, size, mtime_ns, ctime_ns, inode, hash, reference_ns FROM files",
                     "path", lambda r: StatEntry(r[1], r[2], r[3], r[4], r[5], r[6]), empty="files" in self._empty)

    def traces(self) -> Mapping[str, Trace]:
        """Traces, each as it is when first looked up: a build looks a task's up before it runs it."""
        return _Rows(self._fetch, "SELECT task, fingerprint, command_hash, env, inputs, outputs, run_id FROM traces",
                     "task", lambda r: Trace(r[0], r[1], r[2], _LazyJSON(r[3]), _LazyJSON(r[4]), _LazyJSON(r[5]), r[6]),
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
                ends[run_id] = _decode(seq, body, lambda d: {"finished": d["finished"], "result": d["result"],
                                                             "skipped": d.get("skipped")})
        out = []
        for seq, run_id, body in starts:
            end = ends.get(run_id, {})
            out.append(_decode(seq, body, lambda d, end=end: RunRecord(  # type: ignore[misc]
                d["id"], d["started"], d["user"], d["host"], d["version"], d["flowfile_hash"],
                tuple(d["argv"]), tuple(d["targets"]), end.get("finished"), end.get("result"), end.get("skipped"),
                d.get("trigger"))))
        return out

    @_healing
    def run_ids(self) -> List[str]:
        return [r[0] for r in self._conn.execute("SELECT run_id FROM journal WHERE kind = 'run' ORDER BY run_id DESC")]

    @_healing
    def attempts(self, run_id: str) -> List[AttemptRecord]:
        rows = self._conn.execute(
            "SELECT seq, body FROM journal WHERE run_id = ? AND kind = 'attempt' ORDER BY seq", (run_id,)
        )
        return [_decode(seq, body, _attempt_from_json) for seq, body in rows]

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
                record = _decode(seq, body, _attempt_from_json)
                if record.status == "ok" and wanted.intersection(record.outputs):
                    found.append(record)
        found.sort(key=lambda a: a.finished, reverse=True)
        return found

    @_healing
    def journal(self) -> List[JournalEntry]:
        rows = self._conn.execute("SELECT seq, kind, run_id, task, body, prev_hash, hash FROM journal ORDER BY seq")
        return [JournalEntry(*r) for r in rows]

    def readable_journal(self) -> Tuple[List[JournalEntry], Optional[str]]:
        """Every journal record the file still gives back, and what could not be read (None: all).

        For the auditor's commands on a damaged file: the scan in order stops
        at the first bad page; past it each record is asked for on its own,
        so that records on sound pages are still found.
        """
        select = "SELECT seq, kind, run_id, task, body, prev_hash, hash FROM journal"
        entries: List[JournalEntry] = []
        try:
            for row in self._conn.execute(select + " ORDER BY seq"):
                entries.append(JournalEntry(*row))
            return entries, None
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            problem = str(exc)
        after = entries[-1].seq if entries else 0
        try:
            last = self._conn.execute("SELECT max(seq) FROM journal").fetchone()[0] or after
        except sqlite3.DatabaseError:
            last = after
        # max(seq) itself may come from a damaged page: the probe ends after a
        # long enough run of records that are not there.
        lost = misses = 0
        seq = after
        while seq < last and misses < _PROBE_GIVE_UP:
            seq += 1
            try:
                row = self._conn.execute(select + " WHERE seq = ?", (seq,)).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is None:
                lost, misses = lost + 1, misses + 1
            else:
                entries.append(JournalEntry(*row))
                misses = 0
        last_read = entries[-1].seq if entries else 0
        lost -= misses  # the trailing misses are past the end, not lost records
        where = (f"the records after #{after}" if last_read <= after
                 else f"{lost} of records #{after + 1}-#{last_read}")
        return entries, f"{self.path} is damaged: {where} could not be read ({problem})"

    def verify_journal(self) -> "ChainReport":
        """Recompute the hash chain; the first record that does not fit is reported.

        A damaged file fails verification too (`damage`): the records that
        could not be read cannot be vouched for.
        """
        prev = GENESIS
        expected_seq = 1
        count = 0
        entries, damage = self.readable_journal()
        if damage is not None:
            for entry in entries:  # the chain up to the damage still counts as checked
                if (entry.seq != expected_seq or entry.prev_hash != prev or
                        _entry_hash(entry.seq, entry.kind, entry.run_id, entry.task, entry.body,
                                    entry.prev_hash) != entry.hash):
                    break
                prev, expected_seq, count = entry.hash, expected_seq + 1, count + 1
            return ChainReport(ok=False, records=count, head=prev, damage=damage)
        for entry in entries:
            count += 1
            problem = None
            if entry.seq != expected_seq:
                problem = f"record {expected_seq} is missing (next is {entry.seq}): deleted"
            elif entry.prev_hash != prev:
                problem = "does not follow the record before it: a record was inserted or deleted before it"
            elif _entry_hash(entry.seq, entry.kind, entry.run_id, entry.task, entry.body, entry.prev_hash) != entry.hash:
                problem = "its content does not match its hash: edited"
            if problem:
                return ChainReport(ok=False, records=count, head=prev, bad=entry, problem=problem)
            prev = entry.hash
            expected_seq += 1
        return ChainReport(ok=True, records=count, head=prev)

    # -- writing -----------------------------------------------------------

    @_healing
    def begin_run(self, run: RunRecord, *, starts_tasks: bool = True) -> None:
        """The run's record; one that may start tasks is also listed in `running` until it finishes.

        One row per run, not per task: its tasks carry the run's id in their
        environment, which is how a later run finds them (runner.end_orphans)
        without a transaction per task start.
        """
        body = {"id": run.id, "started": run.started, "user": run.user, "host": run.host, "version": run.version,
                "flowfile_hash": run.flowfile_hash, "argv": list(run.argv), "targets": list(run.targets)}
        if run.trigger is not None:  # only then: a run typed by hand keeps the record it always had
            body["trigger"] = dict(run.trigger)
        self._write_run_start(body, starts_tasks=starts_tasks)
        self._begun = (body, starts_tasks)

    def _write_run_start(self, body: dict, *, starts_tasks: bool) -> None:
        with self._conn:
            self._append("run", body["id"], None, body)
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
            self._append("run_end", run_id, None, body)
            self._conn.execute("DELETE FROM running WHERE run_id = ?", (run_id,))

    @_healing
    def record_schedule(self, body: Mapping[str, object], *, record_id: str) -> None:
        """A scheduler's own record: it started or stopped, or a slot was skipped or missed (docs/schedules.md)."""
        with self._conn:
            self._append("schedule", record_id, None, body)

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
            data = _decode(seq, body, lambda d: d)
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
                out[run_id] = _decode(row[0], row[1], lambda d: d["result"])
        return out

    @_healing
    def record_prune(self, run_id: str, pruned: Sequence[str], *, when: float) -> None:
        """Logs of these runs were deleted on purpose: verification must not flag them."""
        with self._conn:
            self._append("prune", run_id, None, {"time": when, "runs": list(pruned)})

    def _append(self, kind: str, run_id: str, task: Optional[str], body: Mapping) -> None:
        # Called inside a transaction: reading the head and appending are atomic.
        row = self._conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
        text = _dumps(body)
        digest = _entry_hash(seq, kind, run_id, task, text, prev)
        self._conn.execute(
            "INSERT INTO journal (seq, kind, run_id, task, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, kind, run_id, task, text, prev, digest),
        )

    @_healing
    def record_attempts(self, finished: Sequence[Tuple[AttemptRecord, Optional[Trace]]],
                        stat_entries: Mapping[str, StatEntry]) -> None:
        """One transaction for finished attempts: history, trace (a new one on success, else invalid), cache."""
        self._empty.clear()
        with self._conn:
            for attempt, trace in finished:
                self._append("attempt", attempt.run_id, attempt.task, _attempt_to_json(attempt))
                if trace is not None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO traces (task, fingerprint, command_hash, env, inputs, outputs, run_id)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (trace.task, trace.fingerprint, trace.command_hash, _dumps(trace.env),
                         _dumps(trace.inputs), _dumps(trace.outputs), trace.run_id),
                    )
                else:
                    self._conn.execute("UPDATE traces SET fingerprint = ? WHERE task = ?",
                                       (INVALIDATED, attempt.task))
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


class _Rows(abc.Mapping):
    """A table's rows keyed by `key`, read as they are looked up, made into objects on each lookup.

    A run over 10,000 tasks of which a few changed plans only the cone below
    the change (engine/proof.py) and looks up a few hundred of 30,000 rows: one
    query each (~5 us) instead of reading them all (~30 ms). Past
    `_BULK_AFTER` distinct keys, or to iterate, the whole table is read once.
    Each row is read once, so a lookup returns the row as it first was.
    """

    _BULK_AFTER = 2000

    __slots__ = ("_fetch", "_select", "_one", "_make", "_rows", "_complete")

    def __init__(self, fetch: Callable[..., Any], select: str, key: str, make: Callable[[tuple], Any], *,
                 empty: bool = False) -> None:
        self._fetch = fetch  # State._fetch: a damaged page found here is handled as in State's methods
        self._select = select
        self._one = f"{select} WHERE {key} = ?"
        self._make = make
        self._rows: Dict[str, Optional[tuple]] = {}  # None: no such row
        # An empty table (a first run) answers every lookup without a query.
        self._complete = empty

    def _row(self, key: str) -> Optional[tuple]:
        rows = self._rows
        if key in rows or self._complete:
            return rows.get(key)
        if len(rows) >= self._BULK_AFTER:
            self._read_all()
            return self._rows.get(key)
        row = rows[key] = self._fetch(self._one, (key,), one=True)
        return row

    def _read_all(self) -> None:
        if not self._complete:
            known = self._rows
            self._rows = {r[0]: r for r in self._fetch(self._select)}
            self._rows.update(known)  # keys already looked up stay as they were
            self._complete = True

    def __getitem__(self, key: str) -> Any:
        row = self._row(key)
        if row is None:
            raise KeyError(key)
        return self._make(row)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        row = self._row(key)
        return default if row is None else self._make(row)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._row(key) is not None

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        return (k for k, r in self._rows.items() if r is not None)

    def __len__(self) -> int:
        self._read_all()
        return sum(1 for r in self._rows.values() if r is not None)


class _LazyJSON(abc.Mapping):
    """A JSON object decoded on first use: a fresh task's env and inputs are
    never looked at (its fingerprint matched), so most are never decoded."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: Optional[dict] = None

    def _get(self) -> dict:
        if self._value is None:
            self._value = json.loads(self._text)
        return self._value

    def __getitem__(self, key: str) -> object:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other: object) -> bool:
        return self._get() == (dict(other) if isinstance(other, abc.Mapping) else other)

    def __repr__(self) -> str:
        return repr(self._get())


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _decode(seq: int, body: str, build: Callable[[dict], T]) -> T:
    """A journal record's body made into a value; a damaged one is a clear error, not a crash."""
    try:
        return build(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrailDamagedError(
            f"journal record #{seq} cannot be read ({type(exc).__name__}: {exc}): the audit trail is damaged",
            hint="`flowmake audit verify` names the first record that was changed",
        ) from None


def _entry_hash(seq: int, kind: str, run_id: str, task: Optional[str], body: str, prev: str) -> str:
    return hash_text("\n".join((prev, str(seq), kind, run_id, task or "", body)))


def _attempt_to_json(a: AttemptRecord) -> dict:
    body = {
        "run_id": a.run_id, "task": a.task, "attempt": a.attempt, "status": a.status,
        "reasons": [r.to_json() for r in a.reasons], "command": a.command, "started": a.started,
        "finished": a.finished, "exit_code": a.exit_code, "inputs": dict(a.inputs), "outputs": dict(a.outputs),
        "log": a.log, "log_hash": a.log_hash, "message": a.message,
    }
    if a.waited is not None:  # only a sensor's: every other record reads as before
        body["waited"] = list(a.waited)
    return body


def _attempt_from_json(d: Mapping) -> AttemptRecord:
    reasons = tuple(Reason(ReasonKind(r["kind"]), r.get("path"), r.get("old"), r.get("new")) for r in d["reasons"])
    return AttemptRecord(
        run_id=d["run_id"], task=d["task"], attempt=d["attempt"], status=d["status"], reasons=reasons,
        command=d["command"], started=d["started"], finished=d["finished"], exit_code=d["exit_code"],
        inputs=d["inputs"], outputs=d["outputs"], log=d["log"], log_hash=d["log_hash"], message=d.get("message"),
        waited=tuple(d["waited"]) if d.get("waited") else None,
    )


def _save_stat_entries(conn: sqlite3.Connection, entries: Mapping[str, StatEntry]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, inode, hash, reference_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(p, e.size, e.mtime_ns, e.ctime_ns, e.inode, e.hash, e.reference_ns) for p, e in entries.items()],
    )


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a killed process; only a power
    # loss can drop the last commits, and never corrupts the database.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")


def _connect_existing(path: str | Path) -> Tuple[sqlite3.Connection, str]:
    """The connection and the database's identity (its creation stamp)."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        _configure(conn)
        rows = dict(conn.execute("SELECT key, value FROM meta"))
        version = int(rows.get("schema_version", "0"))
        if version == 1:
            version = _upgrade_from_1(conn)
        if version == 2:
            version = _upgrade_from_2(conn)
        if version != SCHEMA_VERSION:
            raise StateError(f"schema version {version}, this flowmake uses {SCHEMA_VERSION}")
        if rows.get("hash") != HASH_ALGORITHM:
            raise StateError(f"hashes made with {rows.get('hash')}, this flowmake uses {HASH_ALGORITHM}")
        # Every table must be there; State.open walks the two every run reads.
        for table in ("files", "traces", "journal", "running"):
            conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn, rows.get("created", "")


def _upgrade_from_1(conn: sqlite3.Connection) -> int:
    """Version 1 to the current one, in place: the stat cache is emptied and made again with a ctime column.

    Every file is hashed once more on the next run (its old entries lack the
    ctime that could vouch for it), but the traces and the audit journal are
    kept, so nothing reruns whose content did not change. Returns the version
    now on disk (another process may have upgraded it first).
    """
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # one upgrader at a time; the others then see the new version
        version = int(dict(conn.execute("SELECT key, value FROM meta")).get("schema_version", "0"))
        if version == 1:
            conn.execute("DROP TABLE files")
            conn.execute(_FILES_TABLE)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            version = SCHEMA_VERSION
    return version


def _upgrade_from_2(conn: sqlite3.Connection) -> int:
    """Version 2 to 3, in place: the stat cache's system-clock hash times become references.

    An entry of version 2 was trusted when hashed more than RACY_WINDOW_NS
    after its mtime; as a reference that is the hash time less the window,
    the same rule, so no file is read again for the upgrade.
    """
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # one upgrader at a time; the others then see version 3
        version = int(dict(conn.execute("SELECT key, value FROM meta")).get("schema_version", "0"))
        if version == 2:
            conn.execute("ALTER TABLE files RENAME COLUMN hashed_at_ns TO reference_ns")
            conn.execute("UPDATE files SET reference_ns = reference_ns - ?", (RACY_WINDOW_NS,))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            version = SCHEMA_VERSION
    return version


def _create(path: Path) -> Tuple[sqlite3.Connection, str]:
    # Build in a temporary file and rename into place, so a kill during
    # creation never leaves a half-made database behind.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    from ..removal import remove  # a first run only: kept off the no-op path

    for leftover in (tmp.name, f"{tmp.name}-wal", f"{tmp.name}-shm"):
        remove(str(path.parent), leftover, boundary=str(path.parent))
    conn = sqlite3.connect(str(tmp))
    conn.executescript(_SCHEMA)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("schema_version", str(SCHEMA_VERSION)), ("hash", HASH_ALGORITHM), ("created", str(time.time()))],
    )
    conn.commit()
    conn.close()
    os.replace(tmp, path)
    return _connect_existing(path)


def _set_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = path.with_name(f"{path.name}.unreadable-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.unreadable-{stamp}-{n}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = f"{path}{suffix}"
        if os.path.exists(side):
            os.replace(side, f"{aside}{suffix}")
    return aside
