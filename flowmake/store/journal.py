"""The audit journal: every run, attempt and scheduler record, in one hash chain.

Each record's hash covers the one before it, so an edit, an insertion or a
deletion anywhere shows when the chain is recomputed (`flowmake audit
verify`). A record's body is canonical JSON; this module makes the bodies
of runs and attempts and reads them back, and reads what a damaged file
still gives. Appending happens inside State's transactions.
"""

from __future__ import annotations

import json
import sqlite3

from ..errors import TrailDamagedError
from ..model import AttemptRecord, Reason, ReasonKind, RunRecord
from ..records import TYPE_CHECKING, NamedTuple
from .database import is_damage
from .hashing import hash_text

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Callable, List, Mapping, Optional, Sequence, Tuple, TypeVar

    T = TypeVar("T")

GENESIS = "0" * 64  # prev_hash of the first journal record
_PROBE_GIVE_UP = 10_000  # consecutive absent records after which a damaged journal's probe stops
_SELECT = "SELECT seq, kind, run_id, task, body, prev_hash, hash FROM journal"


class JournalEntry(NamedTuple):
    seq: int
    kind: str  # "run", "attempt", "run_end", "prune", "schedule"
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


def append(conn: sqlite3.Connection, kind: str, run_id: str, task: Optional[str], body: Mapping) -> None:
    """A record at the chain's head; called inside a transaction, so reading the head and appending are atomic."""
    append_many(conn, [(kind, run_id, task, body)])


def append_many(conn: sqlite3.Connection, records: Sequence[Tuple[str, str, Optional[str], Mapping]]) -> None:
    """(kind, run_id, task, body) records at the chain's head, in order; inside a transaction, as `append`.

    The head is read once and the chain carried on here: a batch of a
    build's attempts costs one query and one executemany, not two per record.
    """
    row = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0], row[1]) if row else (0, GENESIS)
    rows = []
    for kind, run_id, task, body in records:
        seq += 1
        text = dumps(body)
        digest = entry_hash(seq, kind, run_id, task, text, prev)
        rows.append((seq, kind, run_id, task, text, prev, digest))
        prev = digest
    conn.executemany(
        "INSERT INTO journal (seq, kind, run_id, task, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def entries(conn: sqlite3.Connection) -> List[JournalEntry]:
    return [JournalEntry(*r) for r in conn.execute(_SELECT + " ORDER BY seq")]


def readable(conn: sqlite3.Connection, path: object) -> Tuple[List[JournalEntry], Optional[str]]:
    """Every journal record the file still gives back, and what could not be read (None: all).

    For the auditor's commands on a damaged file: the scan in order stops
    at the first bad page; past it each record is asked for on its own,
    so that records on sound pages are still found.
    """
    found: List[JournalEntry] = []
    try:
        for row in conn.execute(_SELECT + " ORDER BY seq"):
            found.append(JournalEntry(*row))
        return found, None
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        problem = str(exc)
    after = found[-1].seq if found else 0
    try:
        last = conn.execute("SELECT max(seq) FROM journal").fetchone()[0] or after
    except sqlite3.DatabaseError:
        last = after
    # max(seq) itself may come from a damaged page: the probe ends after a
    # long enough run of records that are not there.
    lost = misses = 0
    seq = after
    while seq < last and misses < _PROBE_GIVE_UP:
        seq += 1
        try:
            row = conn.execute(_SELECT + " WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None:
            lost, misses = lost + 1, misses + 1
        else:
            found.append(JournalEntry(*row))
            misses = 0
    last_read = found[-1].seq if found else 0
    lost -= misses  # the trailing misses are past the end, not lost records
    where = (f"the records after #{after}" if last_read <= after
             else f"{lost} of records #{after + 1}-#{last_read}")
    return found, f"{path} is damaged: {where} could not be read ({problem})"


def _fits(entry: JournalEntry) -> bool:
    return entry_hash(entry.seq, entry.kind, entry.run_id, entry.task, entry.body, entry.prev_hash) == entry.hash


def verify(found: List[JournalEntry], damage: Optional[str]) -> ChainReport:
    """Recompute the hash chain; the first record that does not fit is reported.

    A damaged file fails verification too (`damage`): the records that
    could not be read cannot be vouched for.
    """
    prev = GENESIS
    expected_seq = 1
    count = 0
    if damage is not None:
        for entry in found:  # the chain up to the damage still counts as checked
            if entry.seq != expected_seq or entry.prev_hash != prev or not _fits(entry):
                break
            prev, expected_seq, count = entry.hash, expected_seq + 1, count + 1
        return ChainReport(ok=False, records=count, head=prev, damage=damage)
    for entry in found:
        count += 1
        problem = None
        if entry.seq != expected_seq:
            problem = f"record {expected_seq} is missing (next is {entry.seq}): deleted"
        elif entry.prev_hash != prev:
            problem = "does not follow the record before it: a record was inserted or deleted before it"
        elif not _fits(entry):
            problem = "its content does not match its hash: edited"
        if problem:
            return ChainReport(ok=False, records=count, head=prev, bad=entry, problem=problem)
        prev = entry.hash
        expected_seq += 1
    return ChainReport(ok=True, records=count, head=prev)


# json.dumps with these arguments builds a new encoder on every call (a
# build makes four bodies per task); one made once writes the same text.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def dumps(value: object) -> str:
    return _ENCODER.encode(value)


def decode(seq: int, body: str, build: Callable[[dict], T]) -> T:
    """A journal record's body made into a value; a damaged one is a clear error, not a crash."""
    try:
        return build(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrailDamagedError(
            f"journal record #{seq} cannot be read ({type(exc).__name__}: {exc}): the audit trail is damaged",
            hint="`flowmake audit verify` names the first record that was changed",
        ) from None


def entry_hash(seq: int, kind: str, run_id: str, task: Optional[str], body: str, prev: str) -> str:
    return hash_text("\n".join((prev, str(seq), kind, run_id, task or "", body)))


def run_to_json(run: RunRecord) -> dict:
    body = {"id": run.id, "started": run.started, "user": run.user, "host": run.host, "version": run.version,
            "flowfile_hash": run.flowfile_hash, "argv": list(run.argv), "targets": list(run.targets)}
    if run.trigger is not None:  # only then: a run typed by hand keeps the record it always had
        body["trigger"] = dict(run.trigger)
    return body


def run_end_from_json(d: Mapping) -> dict:
    return {"finished": d["finished"], "result": d["result"], "skipped": d.get("skipped")}


def run_from_json(d: Mapping, end: Mapping) -> RunRecord:
    """A run's record from its start's body and its end's (run_end_from_json; empty: not finished)."""
    return RunRecord(d["id"], d["started"], d["user"], d["host"], d["version"], d["flowfile_hash"],
                     tuple(d["argv"]), tuple(d["targets"]), end.get("finished"), end.get("result"),
                     end.get("skipped"), d.get("trigger"))


def attempt_to_json(a: AttemptRecord) -> dict:
    body = {
        "run_id": a.run_id, "task": a.task, "attempt": a.attempt, "status": a.status,
        "reasons": [r.to_json() for r in a.reasons], "command": a.command, "started": a.started,
        "finished": a.finished, "exit_code": a.exit_code, "inputs": dict(a.inputs), "outputs": dict(a.outputs),
        "log": a.log, "log_hash": a.log_hash, "message": a.message,
    }
    if a.waited is not None:  # only a sensor's: every other record reads as before
        body["waited"] = list(a.waited)
    if a.worker is not None:  # where it ran (records older than this field have none)
        body["worker"] = a.worker
    if a.restored is not None:  # only a restore's (docs/cache.md)
        body["restored"] = dict(a.restored)
    return body


def attempt_from_json(d: Mapping) -> AttemptRecord:
    reasons = tuple(Reason(ReasonKind(r["kind"]), r.get("path"), r.get("old"), r.get("new")) for r in d["reasons"])
    return AttemptRecord(
        run_id=d["run_id"], task=d["task"], attempt=d["attempt"], status=d["status"], reasons=reasons,
        command=d["command"], started=d["started"], finished=d["finished"], exit_code=d["exit_code"],
        inputs=d["inputs"], outputs=d["outputs"], log=d["log"], log_hash=d["log_hash"], message=d.get("message"),
        waited=tuple(d["waited"]) if d.get("waited") else None, worker=d.get("worker"), restored=d.get("restored"),
    )

