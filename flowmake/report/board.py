"""The live view's model: every task's phase, and which rows fit on screen.

`Board` folds events into per-task and per-group state in O(1) per event, so a
run of 100,000 events costs nothing until something is drawn. `layout()` then
picks the rows for a screen of a given height, collapsing in steps so that
the view never scrolls: first every task; then calm groups (all done, fresh
or pending) as one summary line each; then all calm groups as one "… N more
tasks" line; finally a flat list of the tasks that matter most. Running,
waiting and failed tasks stay visible in every step but the last, which
shows as many of them as fit. Each step's size is known, or bounded, without
walking every task, so a frame costs O(what is shown) however large the run.
Nothing here draws or imports rich, so the collapsing rules are tested as
data; tree.py turns rows into a rich Tree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import chain, islice
from operator import attrgetter
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
_LIVE_FIRST = frozenset({TaskState.RUNNING, TaskState.RETRYING, TaskState.WAITING, TaskState.INTERRUPTED})
_group_of = attrgetter("group")


class TaskView:
    """One task as shown. Slots: a run of 100,000 tasks holds 100,000 of these."""

    __slots__ = ("name", "group", "index", "phase", "reasons", "started", "ended", "duration", "line", "detail",
                 "waiting_for", "attempt", "worker")

    def __init__(self, name: str, group: str, index: int, reasons: Tuple[Reason, ...] = ()) -> None:
        self.name = name
        self.group = group
        self.index = index  # of its entry in Board.entries: itself, or its group
        self.phase = TaskState.PENDING
        self.reasons = reasons
        self.started: Optional[float] = None  # clock reading when it started
        self.ended: Optional[float] = None  # clock reading when it stopped running
        self.duration = 0.0
        self.line = ""  # latest output line, cleaned
        self.detail = ""  # failure or skip text, worded once when it finishes
        self.waiting_for: Tuple[str, ...] = ()
        self.attempt = 1
        self.worker = ""  # the cluster worker running it (task_placed), if an executor said


class GroupView:
    """A group of two or more tasks (a matrix); a task alone in its group is its own entry."""

    __slots__ = ("name", "index", "tasks", "counts", "notable", "name_width")

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.tasks: List[str] = []
        self.counts: Dict[TaskState, int] = dict.fromkeys(TaskState, 0)  # TaskState -> number of its tasks
        self.notable: Dict[str, None] = {}  # ordered set of task names
        self.name_width = 0


Entry = Union[TaskView, GroupView]  # one per group, in plan order: what the tree lists under its root


class Board:
    """Per-task and per-group state of one run, updated in O(1) per event."""

    def __init__(self) -> None:
        self.flow_name = ""
        self.tasks: Dict[str, TaskView] = {}
        self.groups: Dict[str, GroupView] = {}  # groups of two or more tasks
        self.entries: List[Entry] = []
        self.totals: Dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self.active: Dict[int, None] = {}  # indices of entries holding a notable task
        # Notable tasks, in the order they became so: live ones (shown first) and failed ones.
        self.live: Dict[str, None] = {}
        self.failed: Dict[str, None] = {}
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
        sizes = Counter(map(_group_of, tasks))
        tasks_by_name, entries, groups = self.tasks, self.entries, self.groups
        width = 0
        for planned in tasks:
            reasons = planned.reasons if planned.will_run else ()
            group = planned.group
            if sizes[group] == 1:  # the common case at 100,000 tasks: kept to one object
                view = tasks_by_name[planned.name] = TaskView(planned.name, group, len(entries), reasons)
                entries.append(view)
                width = max(width, len(planned.name))
            else:
                self._add_to_group(planned.name, group).reasons = reasons
        self.full_rows = len(self.tasks) + len(groups)
        self.totals[TaskState.PENDING] = len(self.tasks)
        self.single_width = min(width, MAX_NAME_WIDTH)

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
        for name in list(self.live):
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

    def _add_to_group(self, name: str, group_name: str) -> TaskView:
        group = self.groups.get(group_name)
        if group is None:
            group = self.groups[group_name] = GroupView(group_name, len(self.entries))
            self.entries.append(group)
        group.tasks.append(name)
        group.name_width = max(group.name_width, min(len(name), MAX_NAME_WIDTH))
        view = self.tasks[name] = TaskView(name, group_name, group.index)
        group.counts[TaskState.PENDING] += 1
        return view

    def _get(self, name: str) -> TaskView:
        # Tolerate a task missing from the plan rather than crash the display: its own entry.
        view = self.tasks.get(name)
        if view is None:
            view = self.tasks[name] = TaskView(name, name, len(self.entries))
            self.entries.append(view)
            self.full_rows += 1
            self.totals[TaskState.PENDING] += 1
            self.single_width = max(self.single_width, min(len(name), MAX_NAME_WIDTH))
        return view

    def _set(self, view: TaskView, phase: TaskState) -> None:
        totals = self.totals
        totals[view.phase] -= 1
        totals[phase] += 1
        entry = self.entries[view.index]
        name = view.name
        self.live.pop(name, None)  # re-inserted below: order of latest change
        self.failed.pop(name, None)
        if entry is view:
            view.phase = phase
            if phase in NOTABLE:
                self.active[view.index] = None
            else:
                self.active.pop(view.index, None)
        else:
            assert isinstance(entry, GroupView)
            entry.counts[view.phase] -= 1
            entry.counts[phase] += 1
            view.phase = phase
            if phase in NOTABLE:
                entry.notable[name] = None
                self.active[entry.index] = None
            else:
                entry.notable.pop(name, None)
                if not entry.notable:
                    self.active.pop(entry.index, None)
        if phase in _LIVE_FIRST:
            self.live[name] = None
        elif phase in NOTABLE:
            self.failed[name] = None


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
    elif _calm_groups_rows(board, budget) <= budget:
        rows.extend(_calm_groups_folded(board))
    elif _active_groups_rows(board, budget) <= budget:
        rows.extend(_active_groups_only(board))
    else:
        rows.extend(_flat(board, budget))
    return rows


def _every_task(board: Board) -> Iterator[Row]:
    for entry in board.entries:
        if isinstance(entry, TaskView):
            yield TaskRow(entry, 0, board.single_width)
            continue
        yield GroupRow(entry)
        for name in entry.tasks:
            yield TaskRow(board.tasks[name], 1, entry.name_width)


def _entry_rows(board: Board, entry: Entry) -> Iterator[Row]:
    """A group as one line, its notable tasks below it; a task alone in its group as its own line."""
    if isinstance(entry, TaskView):
        yield TaskRow(entry, 0, board.single_width)
        return
    yield GroupRow(entry)
    for name in entry.notable:
        yield TaskRow(board.tasks[name], 1, entry.name_width)


def _rows_of(entry: Entry) -> int:
    return 1 if isinstance(entry, TaskView) else 1 + len(entry.notable)


def _calm_groups_rows(board: Board, budget: int) -> int:
    """Rows of the calm-groups step, or some number above `budget` once it is sure not to fit."""
    rows = len(board.entries)
    for index in board.active:
        if rows > budget:
            break
        rows += _rows_of(board.entries[index]) - 1
    return rows


def _calm_groups_folded(board: Board) -> Iterator[Row]:
    for entry in board.entries:
        yield from _entry_rows(board, entry)


def _active_groups_rows(board: Board, budget: int) -> int:
    """Rows of the active-groups step, or some number above `budget` once it is sure not to fit."""
    if len(board.active) > budget:  # each active entry takes a line at least
        return len(board.active)
    rows = 1 if len(board.active) < len(board.entries) else 0
    return rows + sum(_rows_of(board.entries[i]) for i in board.active)


def _active_groups_only(board: Board) -> Iterator[Row]:
    hidden = dict(board.totals)
    for index in sorted(board.active):
        entry = board.entries[index]
        yield from _entry_rows(board, entry)
        if isinstance(entry, TaskView):
            hidden[entry.phase] -= 1
        else:
            for phase, n in entry.counts.items():
                hidden[phase] -= n
    yield from _more_row(hidden)


def _flat(board: Board, budget: int) -> Iterator[Row]:
    """Last resort: the tasks that matter most, without group lines, then a count of the rest."""
    notable = len(board.live) + len(board.failed)
    # Live tasks first, then failed ones: read only as many as are shown.
    shown = list(islice(chain(board.live, board.failed), notable if notable + 1 <= budget else budget - 1))
    hidden = dict(board.totals)
    width = min(max((len(n) for n in shown), default=0), MAX_NAME_WIDTH)
    for name in shown:
        view = board.tasks[name]
        hidden[view.phase] -= 1
        yield TaskRow(view, 0, width)
    yield from _more_row(hidden)


def _more_row(hidden: Dict[TaskState, int]) -> Iterator[Row]:
    counts = {phase: n for phase, n in hidden.items() if n > 0}
    total = sum(counts.values())
    if total:
        yield MoreRow(total, counts)
