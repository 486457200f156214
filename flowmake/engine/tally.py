"""What became of each task of a run: its counts, its failures, the order tasks finished; and their events.

The one place a task is finished: every end (ran, fresh, failed,
interrupted, skipped) goes through `Tally.finish`, which counts it and
emits its `task_finished`, so the counts a run ends with always match the
events it sent.
"""

from __future__ import annotations

import time

from ..events import END_STATES, TaskFinished, TasksFresh, TaskState
from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

    from ..events import Event, TaskStarted


class Tally:
    def __init__(self, run_id: str, emit: Callable[[Event], None]) -> None:
        self.run_id = run_id
        self.emit = emit
        # Restored ones are counted only in runs that have some: the counts' shape predates the cache.
        self.counts: Dict[str, int] = {s.value: 0 for s in END_STATES}
        self.failed: List[str] = []  # names, in the order they failed
        self.failures: List[TaskFinished] = []  # their events, for the hooks' summary
        self.order: List[str] = []  # every finished task, in order
        self.skipped: Dict[str, str] = {}  # task -> why: recorded with the run's end, for reports
        # task_started events held back while a finished task's slot is refilled (Loop._handle).
        self.held: Optional[List[TaskStarted]] = None

    def started(self, event: TaskStarted) -> None:
        if self.held is not None:
            self.held.append(event)  # shown after the finish that freed its slot
        else:
            self.emit(event)

    def release_held(self) -> None:
        held, self.held = self.held or [], None
        for event in held:
            self.emit(event)

    def finish(self, name: str, status: TaskState, *, duration: float = 0.0, exit_code: Optional[int] = None,
               message: Optional[str] = None, log: Optional[str] = None, tail: Tuple[str, ...] = (),
               attempt: int = 1) -> None:
        if self.held:
            # A held start of this very task must not come after its finish.
            for held in [e for e in self.held if e.task == name]:
                self.held.remove(held)
                self.emit(held)
        self.counts[status.value] = self.counts.get(status.value, 0) + 1
        self.order.append(name)
        if status is TaskState.SKIPPED:
            self.skipped[name] = message or ""
        elif status is TaskState.FAILED:
            self.failed.append(name)
        event = TaskFinished(self.run_id, time.time(), name, status, duration, exit_code, message, log, tail, attempt)
        if status is TaskState.FAILED:
            self.failures.append(event)
        self.emit(event)

    def fresh(self, names: Sequence[str]) -> None:
        """`finish` for many fresh tasks at once (those proven fresh, before any task starts).

        Every one still gets its task_finished: as one TasksFresh event to an
        emit that takes them (cli/guard.py hands each reporter what it
        takes), else one by one; on a no-op over 10,000 tasks these events
        are most of the run.
        """
        assert not self.held
        self.counts[TaskState.FRESH.value] += len(names)
        self.order.extend(names)
        event = TasksFresh(self.run_id, time.time(), tuple(names))
        if getattr(self.emit, "takes_tasks_fresh", False):
            self.emit(event)
            return
        for finished in event.each():
            self.emit(finished)
