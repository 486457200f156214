"""What happens during a run, as data.

The build loop emits these; reporters (tree, plain, JSON lines) consume them
and nothing else. Each event turns into its stable JSON shape with
`to_json()`; that shape is documented in docs/json.md and must only grow.
"""

from __future__ import annotations

import enum
from itertools import filterfalse
from operator import attrgetter
from datetime import datetime, timezone

from .model import Reason
from .records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Dict, Iterable, Mapping, Optional, Tuple, Union


class TaskState(str, enum.Enum):
    """Every state a task is ever said to be in: one vocabulary for status, the plan, the live
    view, task_finished, the run's counts and the journal's attempts (docs/json.md)."""

    # Decided before anything runs (status, run -n, a run's plan: engine/plan.py's Decision.state).
    STALE = "stale"
    BLOCKED = "blocked"  # below a stale task: decided once it is done
    FRESH = "fresh"  # up to date; also how a task that did not need to run ends
    ALWAYS = "always"  # status only: runs on every run (plan.always_runs), so no gate counts it
    # Where a task is during a run (the live view).
    PENDING = "pending"
    WAITING = "waiting"  # for its wait_for files
    RUNNING = "running"
    RETRYING = "retrying"  # failed, another attempt due
    # How it ended (task_finished, run_finished counts; OK, RESTORED, FAILED, INTERRUPTED also an attempt's record).
    OK = "ok"
    RESTORED = "restored"  # its outputs put back from the shared cache (engine/restore.py): counted only when some are
    FAILED = "failed"
    SKIPPED = "skipped"  # not started: upstream failed, or the run stopped
    INTERRUPTED = "interrupted"  # still running when the run was interrupted (Ctrl-C, SIGTERM, SIGHUP)


TaskStatus = TaskState  # the name task_finished's status had; kept for code written against it
PLAN_STATES = (TaskState.STALE, TaskState.BLOCKED, TaskState.FRESH)  # a plan's counts, in order
# A run's counts (run_finished), zeros included; RESTORED joins them in runs that restore.
END_STATES = (TaskState.OK, TaskState.FAILED, TaskState.FRESH, TaskState.SKIPPED, TaskState.INTERRUPTED)


class RunResult(str, enum.Enum):
    SUCCESS = "success"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def iso_time(ts: float) -> str:
    """UTC ISO-8601 with milliseconds: sortable and unambiguous in logs."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(event: "Event") -> dict:
    """The keys every event's JSON starts with."""
    return {"event": event.kind, "run_id": event.run_id, "time": iso_time(event.time)}


class PlannedTask(NamedTuple):
    """A selected task as the run starts: its preview state and reasons."""

    name: str
    group: str
    will_run: bool  # stale now; False when fresh or waiting on a stale upstream
    blocked_by: Tuple[str, ...] = ()  # stale upstream tasks that decide it later
    reasons: Tuple[Reason, ...] = ()  # its own: never `upstream stale` (blocked_by says that)
    deps: Tuple[str, ...] = ()  # direct dependencies among the selected tasks

    @property
    def state(self) -> TaskState:
        """The rebuilder's word for it (engine/plan.py's Decision.state): stale, blocked or fresh."""
        if self.will_run:
            return TaskState.STALE
        return TaskState.BLOCKED if self.blocked_by else TaskState.FRESH


def plan_counts(items: Iterable[object]) -> Dict[str, int]:
    """How many are stale, blocked and fresh, of anything with a `state` (planned tasks, decisions).

    The one count of a plan: status, `run -n`'s run_finished and the reporters' plan lines use it.
    """
    # `state` follows from will_run and blocked_by (as PlannedTask.state says);
    # counted from those with C-level iteration, since a no-op's plan line counts
    # every task and a Python loop over the property cost it ~3 ms at 10,000.
    every = items if isinstance(items, (list, tuple)) else tuple(items)
    waiting = tuple(filterfalse(_will_run, every))  # fresh, or blocked behind a stale task
    blocked = sum(map(bool, map(_blocked_by, waiting)))
    return {TaskState.STALE.value: len(every) - len(waiting), TaskState.BLOCKED.value: blocked,
            TaskState.FRESH.value: len(waiting) - blocked}


_will_run = attrgetter("will_run")
_blocked_by = attrgetter("blocked_by")


class RunStarted(NamedTuple):
    run_id: str
    time: float
    flow_name: str
    targets: Tuple[str, ...]
    tasks: Tuple[PlannedTask, ...]
    jobs: int
    dry_run: bool = False
    # Dry run only: task -> its command (secrets masked), for each task that would or may run.
    commands: Mapping[str, str] = {}  # never mutated

    @property
    def kind(self) -> str:
        return "run_started"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "flow": self.flow_name,
            "targets": list(self.targets),
            "task_count": len(self.tasks),
            "jobs": self.jobs,
            "dry_run": self.dry_run,
        }


class TaskStarted(NamedTuple):
    run_id: str
    time: float
    task: str
    reasons: Tuple[Reason, ...]
    command: Optional[str]  # secrets masked
    attempt: int = 1

    @property
    def kind(self) -> str:
        return "task_started"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "task": self.task,
            "reasons": [r.to_json() for r in self.reasons],
            "command": self.command,
            "attempt": self.attempt,
        }


class TaskWaiting(NamedTuple):
    """A sensor task is waiting for files to arrive (`wait_for`)."""

    run_id: str
    time: float
    task: str
    paths: Tuple[str, ...]  # still missing or not yet stable

    @property
    def kind(self) -> str:
        return "task_waiting"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "task": self.task,
            "paths": list(self.paths),
        }


class TaskPlaced(NamedTuple):
    """A task's command began on a cluster's worker (executors that place tasks: Dask); for the live view."""

    run_id: str
    time: float
    task: str
    worker: str  # the worker's address, e.g. "tcp://10.0.0.7:40123"

    @property
    def kind(self) -> str:
        return "task_placed"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "task": self.task,
            "worker": self.worker,
        }


class TaskOutput(NamedTuple):
    """The latest line a running task printed (throttled; for the live view)."""

    run_id: str
    time: float
    task: str
    line: str

    @property
    def kind(self) -> str:
        return "task_output"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "task": self.task,
            "line": self.line,
        }


class TaskLines(NamedTuple):
    """Lines a running task printed, every one, in order (for `--output` modes that print them).

    Sent as they arrive (prefixed, interleaved) or as one block when the task
    ends (group), before its task_finished. Secrets are masked; a line redrawn
    with carriage returns is its final state (docs/cli.md, "Task output").
    """

    run_id: str
    time: float
    task: str
    lines: Tuple[str, ...]
    omitted: int = 0  # lines before these that a block left out (they are in the log)

    @property
    def kind(self) -> str:
        return "task_lines"

    def to_json(self) -> dict:
        out: dict = {
            **_envelope(self),
            "task": self.task,
            "lines": list(self.lines),
        }
        if self.omitted:
            out["omitted"] = self.omitted
        return out


class TaskFinished(NamedTuple):
    run_id: str
    time: float
    task: str
    status: TaskState  # one of END_STATES, or RESTORED
    duration: float = 0.0
    exit_code: Optional[int] = None
    message: Optional[str] = None  # why it failed or was skipped, in words
    log: Optional[str] = None  # project-relative path of the captured log
    tail: Tuple[str, ...] = ()  # last lines of the log, for failures
    attempt: int = 1
    will_retry: bool = False

    @property
    def kind(self) -> str:
        return "task_finished"

    def to_json(self) -> dict:
        out: dict = {
            **_envelope(self),
            "task": self.task,
            "status": self.status.value,
            "duration": round(self.duration, 3),
            "exit_code": self.exit_code,
        }
        if self.message is not None:
            out["message"] = self.message
        if self.log is not None:
            out["log"] = self.log
        if self.tail:
            out["tail"] = list(self.tail)
        if self.attempt != 1 or self.will_retry:
            out["attempt"] = self.attempt
            out["will_retry"] = self.will_retry
        return out


class TasksFresh(NamedTuple):
    """Many tasks proven fresh at once, before any starts (the no-op, a run's proven cone): one
    task_finished each, as `each()` makes them. Never in the JSON stream itself: a reporter
    gets this one event only if it says it takes them (`takes_tasks_fresh`, cli/guard.py),
    and every other consumer its task_finished events, so 100,000 fresh tasks cost a plain
    report one event, not 100,000."""

    run_id: str
    time: float
    tasks: Tuple[str, ...]

    @property
    def kind(self) -> str:
        return "tasks_fresh"

    def each(self) -> "Iterable[TaskFinished]":
        run_id, now, new, fresh = self.run_id, self.time, tuple.__new__, TaskState.FRESH
        # Built without keyword handling: on a big no-op these are most of the events.
        return (new(TaskFinished, (run_id, now, name, fresh, 0.0, None, None, None, (), 1, False))
                for name in self.tasks)


class RunInterrupted(NamedTuple):
    """The run acts on a signal: it stops its running tasks (SIGTERM to each process group, then SIGKILL)."""

    run_id: str
    time: float
    signal: str  # "SIGINT", "SIGTERM" or "SIGHUP"
    tasks: Tuple[str, ...]  # the tasks being stopped
    kill_in: float  # seconds until SIGKILL; 0 when they are killed now (a second Ctrl-C)

    @property
    def kind(self) -> str:
        return "run_interrupted"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "signal": self.signal,
            "tasks": list(self.tasks),
            "kill_in": self.kill_in,
        }


class Notice(NamedTuple):
    """A warning or note for the user (goes to stderr in text modes)."""

    run_id: str
    time: float
    message: str
    level: str = "warning"

    @property
    def kind(self) -> str:
        return "notice"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "level": self.level,
            "message": self.message,
        }


class RunFinished(NamedTuple):
    run_id: str
    time: float
    result: RunResult
    counts: Mapping[str, int] = {}  # never mutated  # TaskState value -> count (END_STATES; PLAN_STATES when dry)
    duration: float = 0.0
    failed: Tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def kind(self) -> str:
        return "run_finished"

    def to_json(self) -> dict:
        return {
            **_envelope(self),
            "result": self.result.value,
            "counts": dict(self.counts),
            "duration": round(self.duration, 3),
            "failed": list(self.failed),
            "dry_run": self.dry_run,
        }


if TYPE_CHECKING:  # a name for type checkers only; nothing tests for it at run time
    Event = Union[RunStarted, TaskStarted, TaskWaiting, TaskPlaced, TaskOutput, TaskLines, TaskFinished, TasksFresh,
                  RunInterrupted, Notice, RunFinished]
