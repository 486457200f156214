"""The database file, `.flowmake/state.db`: where it is, its schema and its upgrades.

A database is created in a temporary file and renamed into place, so a kill
never leaves a half-made one; an older schema is upgraded in place, keeping
the traces and the journal; one that cannot be used is set aside (never
deleted) for State to start over. Only `state` and `journal` use the
connection this module opens.
"""

from __future__ import annotations

import os
import sqlite3
import time

from ..layout import STATE_DIR
from ..records import TYPE_CHECKING
from .fsclock import RACY_WINDOW_NS
from .hashing import HASH_ALGORITHM

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Tuple

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


class StateError(Exception):
    """The database cannot be used (corrupt, or from an unknown version)."""


def is_damage(exc: BaseException) -> bool:
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


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def ensure_state_dir(root: Path) -> Path:
    directory = state_dir(root)
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return directory


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a killed process; only a power
    # loss can drop the last commits, and never corrupts the database.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    # Those syncs come with checkpoints, each a stall of the build's one thread
    # (10-40 ms on a busy disk). The default, one per 1,000 pages of WAL, is
    # about two per 1,000 trivial tasks; one per 10,000 pages (~40 MB) is a
    # tenth of them, and the WAL is cut back to 8 MB once checkpointed.
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    conn.execute("PRAGMA journal_size_limit=8388608")


def connect_existing(path: str | Path) -> Tuple[sqlite3.Connection, str]:
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


def create(path: Path) -> Tuple[sqlite3.Connection, str]:
    # Build in a temporary file and rename into place, so a kill during
    # creation never leaves a half-made database behind.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    from ..removal import remove  # a first run only: kept off the no-op path

    for leftover in (tmp.name, f"{tmp.name}-wal", f"{tmp.name}-shm"):
        remove(str(path.parent), leftover, boundary=str(path.parent))
    conn = sqlite3.connect(str(tmp))
    # Without syncs: the file is new and renamed into place only when whole
    # (a power loss before its bytes reach the disk leaves an empty database's
    # worth, set aside and made again); with them, each statement of the schema
    # cost a first run three fsyncs, some 30 in all.
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(_SCHEMA)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("schema_version", str(SCHEMA_VERSION)), ("hash", HASH_ALGORITHM), ("created", str(time.time()))],
    )
    conn.commit()
    conn.close()
    os.replace(tmp, path)
    return connect_existing(path)


def set_aside(path: Path) -> Path:
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
