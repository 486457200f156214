"""`flowmake audit verify|export`: is the recorded trail intact, and the trail as JSON or CSV.

Verification recomputes the journal's hash chain (store/journal.py), then
checks each kept log file against the hash its attempt recorded.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Set, TextIO, Tuple

from ..errors import StateDamagedError
from ..layout import STATE_DIR
from ..store.hashing import hash_file
from ..store.state import DB_NAME, ChainReport, State, damaged_hint


@dataclass(frozen=True)
class LogProblem:
    run_id: str
    task: str
    log: str
    problem: str


def verify(state: State, root: Path) -> Tuple[ChainReport, List[LogProblem]]:
    """Check the hash chain, then each kept log file against its recorded hash."""
    report = state.verify_journal()
    problems: List[LogProblem] = []
    if report.damage is not None:
        return report, problems  # the chain itself could not be read back: that is the finding
    entries = [e for e in state.journal() if report.bad is None or e.seq < report.bad.seq]
    bodies = [(e.kind, json.loads(e.body)) for e in entries]  # all before the first bad record: sound
    pruned: Set[str] = {run for kind, body in bodies if kind == "prune" for run in body["runs"]}
    for kind, body in bodies:
        if kind == "attempt" and body.get("log") and body.get("log_hash"):
            if body["run_id"] in pruned:
                continue
            full = root / body["log"]
            if not full.exists():
                problems.append(LogProblem(body["run_id"], body["task"], body["log"], "log file is missing"))
            elif hash_file(full) != body["log_hash"]:
                problems.append(LogProblem(body["run_id"], body["task"], body["log"],
                                           "log file does not match its recorded hash: edited"))
    return report, problems


def audit_verify(root: Path, out: TextIO = sys.stdout) -> int:
    state = State.open_for_reading(root)
    try:
        report, log_problems = verify(state, root)
    finally:
        state.close()
    if report.damage is not None:
        print(f"audit: FAILED: {report.damage}", file=sys.stderr)
        print(f"audit: {report.records} records were checked before the damage and are intact"
              f" (head {report.head})", file=sys.stderr)
        print(f"  hint: {damaged_hint(root / STATE_DIR / DB_NAME)}", file=sys.stderr)
        return 1
    if not report.ok:
        bad = report.bad
        assert bad is not None
        what = f"{bad.kind} record #{bad.seq} (run {bad.run_id}" + (f", task {bad.task})" if bad.task else ")")
        print(f"audit: FAILED at {what}: {report.problem}", file=sys.stderr)
        print(f"audit: the {report.records - 1} records before it are intact (head {report.head})", file=sys.stderr)
        return 1
    for p in log_problems:
        print(f"audit: FAILED: log of {p.task} in run {p.run_id} ({p.log}): {p.problem}", file=sys.stderr)
    if log_problems:
        return 1
    out.write(f"audit: ok: {report.records} records, hash chain intact, kept logs match their hashes\n")
    out.write(f"audit: head {report.head}\n")
    return 0


def audit_export(root: Path, *, fmt: str, output: Optional[Path], out: TextIO = sys.stdout) -> int:
    import csv
    import io

    state = State.open_for_reading(root)
    try:
        entries, _damage = state.readable_journal()
        report = state.verify_journal()
    finally:
        state.close()
    records = []
    for e in entries:
        try:
            body = json.loads(e.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"unreadable_body": e.body}  # exported as found; verify names it
        records.append({"seq": e.seq, "kind": e.kind, "run_id": e.run_id, "task": e.task, "hash": e.hash,
                        "prev_hash": e.prev_hash, "record": body})
    if fmt == "json":
        text = json.dumps({"chain_ok": report.ok, "head": report.head, "records": records}, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        fields = ["seq", "kind", "run_id", "task", "hash", "prev_hash"]
        extra: List[str] = []
        for r in records:
            for k in r["record"]:
                if k not in extra and k not in fields:
                    extra.append(k)
        writer = csv.DictWriter(buffer, fieldnames=fields + extra, lineterminator="\n")
        writer.writeheader()
        for r in records:
            row = {k: r[k] for k in fields}
            for k, v in r["record"].items():
                if k in fields:
                    continue
                row[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
            writer.writerow(row)
        text = buffer.getvalue()
    if output is None:
        out.write(text)
    else:
        output.write_text(text)
        out.write(f"wrote {len(records)} records to {output}\n")
    if report.damage is not None:
        raise StateDamagedError(f"exported only the {len(records)} records that could still be read: {report.damage}",
                                hint="the export is what the damaged file still holds; keep it with the file itself")
    if not report.ok:
        bad = report.bad
        print(f"audit: warning: the exported trail is broken at record #{bad.seq}: {report.problem} "
              "(see `flowmake audit verify`)", file=sys.stderr)
        return 1
    return 0
