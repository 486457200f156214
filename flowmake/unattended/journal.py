"""The scheduler's records in the project's journal, written under the project's lock.

Journal records are appended under the one-run-at-a-time lock (the hash
chain needs one writer), so a record the scheduler makes while another
flowmake run holds the project is kept here and written as soon as the lock
is free: before the next run, before each sleep, and when it stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import LockHeldError
from ..store.identity import new_run_id
from ..store.lock import lock_project
from ..store.state import State


class ProjectJournal:
    def __init__(self, root: Path, *, warn: Callable[[str], None]) -> None:
        self.root = root
        self.warn = warn
        self._pending: List[Tuple[str, Mapping[str, object]]] = []

    def records(self) -> Sequence[Mapping[str, object]]:
        state = State.open(self.root, warn=self.warn)
        try:
            return state.schedule_records()
        finally:
            state.close()

    def write(self, body: Mapping[str, object]) -> None:
        self._pending.append((new_run_id(), dict(body)))
        self.flush(wait=False)

    def flush(self, *, wait: bool) -> None:
        if not self._pending:
            return
        try:
            lock = lock_project(self.root, wait=wait)
        except LockHeldError:
            return  # another run holds the project: written after it
        try:
            state = State.open(self.root, warn=self.warn)
            try:
                while self._pending:
                    record_id, body = self._pending[0]
                    state.record_schedule(body, record_id=record_id)
                    self._pending.pop(0)
            finally:
                state.close()
        finally:
            lock.release()


def last_runs(root: Path, *, warn: Callable[[str], None]) -> Dict[str, dict]:
    """Each schedule's latest record (a run with its result, or a skipped or missed slot)."""
    state = State.open(root, warn=warn)
    try:
        latest: Dict[str, dict] = {}
        for body in state.schedule_records():
            name = body.get("schedule")
            if isinstance(name, str):
                latest[name] = dict(body)
        runs = [b["run_id"] for b in latest.values() if b.get("event") == "run"]
        results = state.run_results(runs)
        for body in latest.values():
            if body.get("event") == "run":
                body["result"] = results.get(str(body["run_id"]))
        return latest
    finally:
        state.close()


def run_started_by(root: Path, trigger: Mapping[str, object], *, warn: Callable[[str], None]) -> Optional[str]:
    """The id of the newest run whose record carries this trigger."""
    state = State.open(root, warn=warn)
    try:
        found = [b for b in state.schedule_records() if b.get("event") == "run"
                 and all(b.get(k) == v for k, v in trigger.items())]
        return str(found[-1]["run_id"]) if found else None
    finally:
        state.close()
