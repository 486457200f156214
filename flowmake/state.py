"""Everything flowmake knows, in `.flowmake/state.db` (SQLite, WAL).

Four kinds of records: the stat cache of file hashes, the trace of each
task's last success (what the rebuilder compares against), the run and
attempt history (the audit trail), and the process groups of running tasks
(so that a later run can end the orphans of a killed one).

Crash safety comes from ordering, not from cleanup: a task's trace is deleted
in the same transaction that records its process as started, and written
again only in the transaction that records its success. A flowmake killed at
any moment therefore leaves either the old trace (task never started) or
none (task runs again). The database is a cache of facts: an unreadable or
incompatible one is set aside (never deleted) and rebuilt.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .hashing import HASH_ALGORITHM, StatEntry
from .model import AttemptRecord, Reason, ReasonKind, RunRecord, Trace

STATE_DIR = ".flowmake"
DB_NAME = "state.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, hash TEXT NOT NULL, hashed_at_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE traces (
    task TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, command_hash TEXT NOT NULL,
    env TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, run_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE runs (
    id TEXT PRIMARY KEY, started REAL NOT NULL, finished REAL, user TEXT NOT NULL,
    host TEXT NOT NULL, version TEXT NOT NULL, flowfile_hash TEXT NOT NULL,
    argv TEXT NOT NULL, targets TEXT NOT NULL, result TEXT
);
CREATE TABLE attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task TEXT NOT NULL,
    attempt INTEGER NOT NULL, status TEXT NOT NULL, reasons TEXT NOT NULL, command TEXT,
    started REAL NOT NULL, finished REAL NOT NULL, exit_code INTEGER,
    inputs TEXT NOT NULL, outputs TEXT NOT NULL, log TEXT, log_hash TEXT, message TEXT
);
CREATE INDEX attempts_by_run ON attempts (run_id);
CREATE TABLE running (
    pid INTEGER PRIMARY KEY, start_ticks TEXT NOT NULL, run_id TEXT NOT NULL, task TEXT NOT NULL
);
"""


class StateError(Exception):
    """The database cannot be used (corrupt, or from an unknown version)."""


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def ensure_state_dir(root: Path) -> Path:
    directory = state_dir(root)
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return directory


class State:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(cls, root: Path, *, warn: Callable[[str], None]) -> "State":
        """Open (creating if needed) the project's state; set aside a bad one."""
        directory = ensure_state_dir(root)
        path = directory / DB_NAME
        if path.exists():
            try:
                return cls(_connect_existing(path), path)
            except (sqlite3.DatabaseError, StateError) as exc:
                aside = _set_aside(path)
                warn(
                    f"state database {path} could not be used ({exc}); moved it to {aside.name} "
                    "and starting over: every task runs once more"
                )
        return cls(_create(path), path)

    def close(self) -> None:
        self._conn.close()

    # -- reading -----------------------------------------------------------

    def stat_cache(self) -> Dict[str, StatEntry]:
        rows = self._conn.execute("SELECT path, size, mtime_ns, inode, hash, hashed_at_ns FROM files")
        return {r[0]: StatEntry(r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def traces(self) -> Dict[str, Trace]:
        rows = self._conn.execute("SELECT task, fingerprint, command_hash, env, inputs, outputs, run_id FROM traces")
        return {
            r[0]: Trace(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), json.loads(r[5]), r[6]) for r in rows
        }

    def running_processes(self) -> List[Tuple[int, str, str, str]]:
        return list(self._conn.execute("SELECT pid, start_ticks, run_id, task FROM running"))

    def runs(self, limit: Optional[int] = None) -> List[RunRecord]:
        sql = "SELECT id, started, user, host, version, flowfile_hash, argv, targets, finished, result FROM runs ORDER BY id DESC"
        rows = self._conn.execute(sql + (f" LIMIT {int(limit)}" if limit else ""))
        return [
            RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), tuple(json.loads(r[7])), r[8], r[9])
            for r in rows
        ]

    def attempts(self, run_id: str) -> List[AttemptRecord]:
        rows = self._conn.execute(
            "SELECT run_id, task, attempt, status, reasons, command, started, finished, exit_code,"
            " inputs, outputs, log, log_hash, message FROM attempts WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [_attempt_from_row(r) for r in rows]

    # -- writing -----------------------------------------------------------

    def begin_run(self, run: RunRecord) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO runs (id, started, user, host, version, flowfile_hash, argv, targets)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.id, run.started, run.user, run.host, run.version, run.flowfile_hash,
                 json.dumps(list(run.argv)), json.dumps(list(run.targets))),
            )

    def finish_run(self, run_id: str, *, finished: float, result: str) -> None:
        with self._conn:
            self._conn.execute("UPDATE runs SET finished = ?, result = ? WHERE id = ?", (finished, result, run_id))

    def task_started(self, task: str, *, pid: int, start_ticks: str, run_id: str) -> None:
        """The task's old trace no longer holds once its process may write."""
        with self._conn:
            self._conn.execute("DELETE FROM traces WHERE task = ?", (task,))
            self._conn.execute(
                "INSERT OR REPLACE INTO running (pid, start_ticks, run_id, task) VALUES (?, ?, ?, ?)",
                (pid, start_ticks, run_id, task),
            )

    def task_finished(
        self,
        attempt: AttemptRecord,
        *,
        pid: Optional[int],
        trace: Optional[Trace],
        stat_entries: Mapping[str, StatEntry],
    ) -> None:
        """One transaction per finished attempt: history, trace (on success), cache."""
        with self._conn:
            _insert_attempt(self._conn, attempt)
            if trace is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO traces (task, fingerprint, command_hash, env, inputs, outputs, run_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (trace.task, trace.fingerprint, trace.command_hash, _dumps(trace.env),
                     _dumps(trace.inputs), _dumps(trace.outputs), trace.run_id),
                )
            else:
                self._conn.execute("DELETE FROM traces WHERE task = ?", (attempt.task,))
            if pid is not None:
                self._conn.execute("DELETE FROM running WHERE pid = ?", (pid,))
            _save_stat_entries(self._conn, stat_entries)

    def save_stat_entries(self, entries: Mapping[str, StatEntry]) -> None:
        if entries:
            with self._conn:
                _save_stat_entries(self._conn, entries)

    def forget_processes(self, pids: Iterable[int]) -> None:
        with self._conn:
            self._conn.executemany("DELETE FROM running WHERE pid = ?", [(p,) for p in pids])

    def forget_tasks(self, tasks: Sequence[str], paths: Sequence[str]) -> None:
        """Drop the traces of tasks (and cached hashes of their outputs): `clean`."""
        with self._conn:
            self._conn.executemany("DELETE FROM traces WHERE task = ?", [(t,) for t in tasks])
            self._conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])
            for p in paths:
                if p.endswith("/"):
                    self._conn.execute("DELETE FROM files WHERE substr(path, 1, ?) = ?", (len(p), p))


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _insert_attempt(conn: sqlite3.Connection, a: AttemptRecord) -> None:
    conn.execute(
        "INSERT INTO attempts (run_id, task, attempt, status, reasons, command, started, finished, exit_code,"
        " inputs, outputs, log, log_hash, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (a.run_id, a.task, a.attempt, a.status, json.dumps([r.to_json() for r in a.reasons]), a.command,
         a.started, a.finished, a.exit_code, _dumps(dict(a.inputs)), _dumps(dict(a.outputs)), a.log,
         a.log_hash, a.message),
    )


def _attempt_from_row(r: Sequence) -> AttemptRecord:
    reasons = tuple(
        Reason(ReasonKind(d["kind"]), d.get("path"), d.get("old"), d.get("new")) for d in json.loads(r[4])
    )
    return AttemptRecord(
        run_id=r[0], task=r[1], attempt=r[2], status=r[3], reasons=reasons, command=r[5], started=r[6],
        finished=r[7], exit_code=r[8], inputs=json.loads(r[9]), outputs=json.loads(r[10]), log=r[11],
        log_hash=r[12], message=r[13],
    )


def _save_stat_entries(conn: sqlite3.Connection, entries: Mapping[str, StatEntry]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, hash, hashed_at_ns) VALUES (?, ?, ?, ?, ?, ?)",
        [(p, e.size, e.mtime_ns, e.inode, e.hash, e.hashed_at_ns) for p, e in entries.items()],
    )


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a killed process; only a power
    # loss can drop the last commits, and never corrupts the database.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")


def _connect_existing(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        _configure(conn)
        rows = dict(conn.execute("SELECT key, value FROM meta"))
        version = int(rows.get("schema_version", "0"))
        if version != SCHEMA_VERSION:
            raise StateError(f"schema version {version}, this flowmake uses {SCHEMA_VERSION}")
        if rows.get("hash") != HASH_ALGORITHM:
            raise StateError(f"hashes made with {rows.get('hash')}, this flowmake uses {HASH_ALGORITHM}")
        # Touch every table now, so that damage shows here (and the database is
        # set aside) rather than in the middle of a run.
        for table in ("files", "traces", "runs", "attempts", "running"):
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _create(path: Path) -> sqlite3.Connection:
    # Build in a temporary file and rename into place, so a kill during
    # creation never leaves a half-made database behind.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        if leftover.exists():
            leftover.unlink()
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
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{aside}{suffix}"))
    return aside
