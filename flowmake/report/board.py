"""The live view's model: every task's phase, and which rows fit on screen.

`Board` folds events into per-task and per-group state in O(1) per event, so a
run of 10,000 events costs nothing until something is drawn. `layout()` then
picks the rows for a screen of a given height, collapsing in steps so that
the view never scrolls: first every task; then calm groups (all done, fresh
or pending) as one summary line each; then all calm groups as one "… N more
tasks" line; finally a flat list of the tasks that matter most. Running,
waiting and failed tasks stay visible in every step but the last, which
shows as many of them as fit. Nothing here draws or imports rich, so the
collapsing rules are tested as data; tree.py turns rows into a rich Tree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..events import (
    PlannedTask,
    RunFinished,
    RunInterrupted,
    TaskFinished,
    TaskStarted,
    TaskState,
)
from ..model import Reason
from .common import (
    DONE,
    NOTABLE,
    clean_line,
    failure_detail,
    interrupted_detail,
)

# Names longer than this do not widen their group's name column further.
MAX_NAME_WIDTH = 32
# Phases shown before others in the last-resort flat list: what is happening now.
_LIVE_FIRST = (TaskState.RUNNING, TaskState.RETRYING, TaskState.WAITING, TaskState.INTERRUPTED)


@dataclass
class TaskView:
    name: str
    group: str
    phase: TaskState = TaskState.PENDING
    reasons: Tuple[Reason, ...] = ()
    started: Optional[float] = None  # clock reading when it started
    ended: Optional[float] = None  # clock reading when it stopped running
    duration: float = 0.0
    line: str = ""  # latest output line, cleaned
    detail: str = ""  # failure or skip text, worded once when it finishes
    waiting_for: Tuple[str, ...] = ()
    attempt: int = 1
    worker: str = ""  # the cluster worker running it (task_placed), if an executor said


@dataclass
class GroupView:
    name: str
    index: int
    tasks: List[str] = field(default_factory=list)
    counts: Counter[TaskState] = field(default_factory=Counter)  # TaskState -> number of its tasks
    notable: Dict[str, None] = field(default_factory=dict)  # ordered set of task names
    name_width: int = 0

    @property
    def single(self) -> bool:
        return len(self.tasks) == 1


class Board:
    """Per-task and per-group state of one run, updated in O(1) per event."""

    def __init__(self) -> None:
        self.flow_name = ""
        self.tasks: Dict[str, TaskView] = {}
        self.groups: Dict[str, GroupView] = {}
        self.totals: Counter[TaskState] = Counter()
        self.active: Dict[str, None] = {}  # groups holding a notable task
        self.notable: Dict[str, None] = {}  # notable tasks, in the order they became so
        self.started_at: Optional[float] = None
        self.duration: Optional[float] = None  # the run's own figure, once finished
        self.notices: List[str] = []
        self.full_rows = 0  # rows needed to show every task: a constant of the plan
        self.single_width = 0  # name column of tasks shown directly under the root
        # After Ctrl-C: (tasks being stopped, clock reading of the SIGKILL; None: killed now).
        self.stopping: Optional[Tuple[int, Optional[float]]] = None

    # --- folding events ------------------------------------------------------

    def plan(self, name: str, tasks: Sequence[PlannedTask], now: float) -> None:
        self.flow_name = name
        self.started_at = now
        for planned in tasks:
            view = self._add(planned.name, planned.group)
            view.reasons = planned.reasons if planned.will_run else ()
        singles = [g.name_width for g in self.groups.values() if g.single]
        self.single_width = max(singles, default=0)

    def started(self, event: TaskStarted, now: float) -> None:
        view = self._get(event.task)
        view.reasons = event.reasons
        view.attempt = event.attempt
        view.started, view.ended, view.line, view.worker = now, None, "", ""
        self._set(view, TaskState.RUNNING)

    def placed(self, task: str, worker: str) -> None:
        self._get(task).worker = worker

    def waiting(self, task: str, paths: Tuple[str, ...], now: float) -> None:
        view = self._get(task)
        if view.started is None:
            view.started = now
        view.waiting_for = paths
        # An empty list means the files arrived: the command runs from here on.
        self._set(view, TaskState.WAITING if paths else TaskState.RUNNING)

    def output(self, task: str, line: str) -> None:
        view = self._get(task)
        view.line = clean_line(line)
        if view.phase is TaskState.WAITING:
            self._set(view, TaskState.RUNNING)

    def finished(self, event: TaskFinished, now: float) -> None:
        view = self._get(event.task)
        view.duration, view.ended, view.attempt = event.duration, now, event.attempt
        if event.status is TaskState.INTERRUPTED:
            view.detail = interrupted_detail(event)
            self._set(view, TaskState.INTERRUPTED)
        elif event.status is TaskState.FAILED:
            view.detail = failure_detail(event)
            self._set(view, TaskState.RETRYING if event.will_retry else TaskState.FAILED)
        else:
            view.detail = event.message or ""
            self._set(view, event.status)

    def interrupted(self, event: RunInterrupted, now: float) -> None:
        self.stopping = (len(event.tasks), now + event.kill_in if event.kill_in > 0 else None)

    def finish(self, event: RunFinished, now: float) -> None:
        """Freeze the clock; whatever still runs was cut short by the run ending."""
        self.duration = event.duration
        self.stopping = None
        for name in list(self.notable):
            view = self.tasks[name]
            if view.phase in (TaskState.RUNNING, TaskState.WAITING, TaskState.RETRYING):
                view.ended = now
                self._set(view, TaskState.INTERRUPTED)

    def elapsed(self, now: float) -> float:
        if self.duration is not None:
            return self.duration
        return now - self.started_at if self.started_at is not None else 0.0

    def task_elapsed(self, view: TaskView, now: float) -> float:
        if view.started is None:
            return 0.0
        return (view.ended if view.ended is not None else now) - view.started

    @property
    def done(self) -> int:
        return sum(self.totals[p] for p in DONE)

    # --- bookkeeping -----------------------------------------------------------

    def _add(self, name: str, group_name: str) -> TaskView:
        group = self.groups.get(group_name)
        if group is None:
            group = self.groups[group_name] = GroupView(group_name, len(self.groups))
        # A group's first task is one row; the second adds two, as the group's
        # own line appears above them; every further one adds one.
        self.full_rows += 2 if len(group.tasks) == 1 else 1
        group.tasks.append(name)
        group.name_width = max(group.name_width, min(len(name), MAX_NAME_WIDTH))
        view = self.tasks[name] = TaskView(name, group_name)
        group.counts[TaskState.PENDING] += 1
        self.totals[TaskState.PENDING] += 1
        return view

    def _get(self, name: str) -> TaskView:
        # Tolerate a task missing from the plan rather than crash the display.
        view = self.tasks.get(name)
        if view is None:
            view = self._add(name, name)
            self.single_width = max(self.single_width, self.groups[view.group].name_width)
        return view

    def _set(self, view: TaskView, phase: TaskState) -> None:
        group = self.groups[view.group]
        group.counts[view.phase] -= 1
        self.totals[view.phase] -= 1
        group.counts[phase] += 1
        self.totals[phase] += 1
        view.phase = phase
        if phase in NOTABLE:
            group.notable[view.name] = None
            self.notable.pop(view.name, None)  # re-inserted: order of latest change
            self.notable[view.name] = None
            self.active[group.name] = None
        else:
            group.notable.pop(view.name, None)
            self.notable.pop(view.name, None)
            if not group.notable:
                self.active.pop(group.name, None)


# --- layout ------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    task: TaskView
    depth: int  # 0 under the root, 1 under its group
    width: int  # name column width


@dataclass(frozen=True)
class GroupRow:
    group: GroupView
    depth: int = 0


@dataclass(frozen=True)
class MoreRow:
    hidden: int
    counts: Dict[TaskState, int]


@dataclass(frozen=True)
class NoticeRow:
    message: str
    count: int


Row = Union[TaskRow, GroupRow, MoreRow, NoticeRow]


def layout(board: Board, budget: int) -> List[Row]:
    """Rows under the root, at most `budget` of them, in the most detailed step that fits."""
    rows: List[Row] = []
    if board.notices and budget > 1:
        rows.append(NoticeRow(board.notices[-1], len(board.notices)))
        budget -= 1
    if budget <= 0:
        return rows
    if board.full_rows <= budget:
        rows.extend(_every_task(board))
    elif _calm_groups_rows(board) <= budget:
        rows.extend(_calm_groups_folded(board))
    elif _active_groups_rows(board) <= budget:
        rows.extend(_active_groups_only(board))
    else:
        rows.extend(_flat(board, budget))
    return rows


def _every_task(board: Board) -> Iterator[Row]:
    for group in board.groups.values():
        if group.single:
            yield TaskRow(board.tasks[group.tasks[0]], 0, board.single_width)
            continue
        yield GroupRow(group)
        for name in group.tasks:
            yield TaskRow(board.tasks[name], 1, group.name_width)


def _group_rows(board: Board, group: GroupView) -> Iterator[Row]:
    """A group as one line, its notable tasks below it."""
    if group.single:
        yield TaskRow(board.tasks[group.tasks[0]], 0, board.single_width)
        return
    yield GroupRow(group)
    for name in group.notable:
        yield TaskRow(board.tasks[name], 1, group.name_width)


def _rows_of(group: GroupView) -> int:
    return 1 if group.single else 1 + len(group.notable)


def _calm_groups_rows(board: Board) -> int:
    return len(board.groups) + sum(len(board.groups[g].notable) for g in board.active if not board.groups[g].single)


def _calm_groups_folded(board: Board) -> Iterator[Row]:
    for group in board.groups.values():
        yield from _group_rows(board, group)


def _active(board: Board) -> List[GroupView]:
    return sorted((board.groups[g] for g in board.active), key=lambda g: g.index)


def _active_groups_rows(board: Board) -> int:
    active = _active(board)
    more = 1 if len(active) < len(board.groups) else 0
    return sum(_rows_of(g) for g in active) + more


def _active_groups_only(board: Board) -> Iterator[Row]:
    active = _active(board)
    hidden: Counter[TaskState] = Counter(board.totals)
    for group in active:
        yield from _group_rows(board, group)
        hidden.subtract(group.counts)
    yield from _more_row(hidden)


def _flat(board: Board, budget: int) -> Iterator[Row]:
    """Last resort: the tasks that matter most, without group lines, then a count of the rest."""
    first = [n for n in board.notable if board.tasks[n].phase in _LIVE_FIRST]
    later = [n for n in board.notable if board.tasks[n].phase not in _LIVE_FIRST]
    ordered = first + later
    shown = ordered if len(ordered) + 1 <= budget else ordered[: budget - 1]
    hidden: Counter[TaskState] = Counter(board.totals)
    width = min(max((len(n) for n in shown), default=0), MAX_NAME_WIDTH)
    for name in shown:
        view = board.tasks[name]
        hidden[view.phase] -= 1
        yield TaskRow(view, 0, width)
    yield from _more_row(hidden)


def _more_row(hidden: Counter[TaskState]) -> Iterator[Row]:
    counts = {phase: n for phase, n in hidden.items() if n > 0}
    total = sum(counts.values())
    if total:
        yield MoreRow(total, counts)
