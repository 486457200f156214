"""The tree reporter: a live rich tree of every selected task, for terminals.

`handle()` only folds the event into a `Board` under a lock (O(1) per event);
rich's `Live` redraws about eight times a second from its own thread by
rendering a `TreeView`, which reads the board under the same lock and asks
`board.layout()` for rows that fit the terminal, so the display never
scrolls and a flood of events never turns into a flood of redraws. While the
display is live nothing else may write to the terminal, so notices and
failure tails are held back and written to `err` when the run ends, after
the final tree, and before the one-line summary that ends the output.
Elapsed times come from a monotonic clock read when an event is handled and
when a frame is drawn: the wall clock in events can jump.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from ..events import (
    PLAN_STATES,
    Notice,
    RunFinished,
    RunInterrupted,
    RunResult,
    RunStarted,
    TaskFinished,
    TaskLines,
    TaskOutput,
    TaskPlaced,
    TaskStarted,
    TaskState,
    TaskWaiting,
)
from .board import Board, GroupRow, MoreRow, NoticeRow, Row, TaskRow, TaskView, layout
from .common import (
    COUNT_ORDER,
    ICONS,
    STYLES,
    PlanEntry,
    TaskGroups,
    command_lines,
    dry_run_summary,
    format_clock,
    format_duration,
    groups_of,
    list_text,
    may_run_text,
    phase_counts_text,
    plan_counts,
    plan_entries,
    plural,
    reasons_text,
    stopping_text,
    summary_text,
    tail_report,
)

if TYPE_CHECKING:  # events.Event is a name for type checkers only
    from ..events import Event

REFRESH_PER_SECOND = 8
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# Lines kept free below the tree: the cursor rests there, and a tree as tall
# as the terminal would push its first line off screen.
SPARE_LINES = 1

Clock = Callable[[], float]


class TreeView:
    """The renderable that Live redraws: a snapshot of the board, cut to the screen."""

    def __init__(self, board: Board, lock: threading.Lock, clock: Clock) -> None:
        self.board = board
        self.lock = lock
        self.clock = clock

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.size.height
        with self.lock:
            tree = self.build(height - SPARE_LINES)
        # Labels are finished Text by now, so drawing them needs no lock.
        yield tree

    def build(self, max_lines: int) -> Tree:
        """The tree in at most `max_lines` lines (root included); call with the lock held."""
        now = self.clock()
        tree = Tree(self._root_label(now), guide_style="dim")
        groups: Dict[str, Tree] = {}
        for row in layout(self.board, max(max_lines - 1, 0)):
            if isinstance(row, TaskRow) and row.depth == 1:
                groups[row.task.group].add(self._task_label(row, now))
            elif isinstance(row, GroupRow):
                groups[row.group.name] = tree.add(self._group_label(row))
            else:
                tree.add(self._label(row, now))
        return tree

    def _label(self, row: Row, now: float) -> Text:
        if isinstance(row, TaskRow):
            return self._task_label(row, now)
        if isinstance(row, MoreRow):
            text = f"… {row.hidden} more {'task' if row.hidden == 1 else 'tasks'}: {phase_counts_text(row.counts)}"
            return _line(Text(text, style="dim"))
        assert isinstance(row, NoticeRow)
        more = f" (+{row.count - 1} more)" if row.count > 1 else ""
        return _line(Text(f"! {row.message}{more}", style="yellow"))

    def _root_label(self, now: float) -> Text:
        board = self.board
        text = _styled(board.flow_name or "flowmake", "bold")
        text.append(f"  {board.done}/{len(board.tasks)}")
        for phase in (TaskState.RUNNING, TaskState.WAITING, TaskState.FAILED, TaskState.INTERRUPTED, TaskState.SKIPPED):
            if board.totals[phase]:
                text.append(" · ")
                text.append(f"{board.totals[phase]} {phase.value}", style=STYLES[phase])
        text.append(f" · {format_clock(board.elapsed(now))}", style="dim")
        if board.stopping is not None:
            tasks, kill_at = board.stopping
            text.append("  ")
            text.append(stopping_text(tasks, max(kill_at - now, 0.001) if kill_at is not None else 0.0),
                        style="bold red")
        return _line(text)

    def _group_label(self, row: GroupRow) -> Text:
        group = row.group
        text = _styled(group.name, "bold")
        text.append("  ")
        parts = [(p, group.counts[p]) for p in COUNT_ORDER if group.counts[p] > 0]
        for i, (phase, n) in enumerate(parts):
            if i:
                text.append(" · ", style="dim")
            # No icon for pending: its '·' would read as one more separator.
            icon = "" if phase is TaskState.PENDING else f"{ICONS[phase]} "
            text.append(f"{icon}{n} {phase.value}", style=STYLES[phase])
        return _line(text)

    def _task_label(self, row: TaskRow, now: float) -> Text:
        view = row.task
        text = _styled(self._icon(view, now), STYLES[view.phase])
        text.append(" ")
        text.append(view.name.ljust(row.width), style="bold" if view.phase is TaskState.FAILED else "")
        detail = self._detail(view, now)
        if detail:
            text.append("  ")
            text.append_text(detail)
        return _line(text)

    def _icon(self, view: TaskView, now: float) -> str:
        if view.phase is TaskState.RUNNING:
            return SPINNER[int(now * REFRESH_PER_SECOND) % len(SPINNER)]
        return ICONS[view.phase]

    def _detail(self, view: TaskView, now: float) -> Text:
        phase = view.phase
        clock = format_clock(self.board.task_elapsed(view, now))
        if phase is TaskState.RUNNING:
            text = _styled(clock, STYLES[phase])
            if view.attempt != 1:
                text.append(f"  attempt {view.attempt}", style="yellow")
            if view.worker:
                text.append(f"  on {view.worker}", style="cyan")
            if view.line:
                text.append(f"  {view.line}", style="dim")
            return text
        if phase is TaskState.WAITING:
            return Text(f"{clock}  waiting for {list_text(view.waiting_for)}", style=STYLES[phase])
        if phase is TaskState.PENDING:
            return Text(reasons_text(view.reasons), style="dim")
        if phase is TaskState.OK:
            return Text(format_duration(view.duration), style="dim")
        if phase is TaskState.FRESH:
            return Text("fresh", style="dim")
        if phase is TaskState.RETRYING:
            return Text(f"{view.detail}, will retry", style=STYLES[phase])
        if phase is TaskState.INTERRUPTED:
            return Text(view.detail or f"interrupted after {clock}", style=STYLES[phase])
        return Text(view.detail, style=STYLES[phase])


def _styled(text: str, style: str) -> Text:
    """A Text whose style stays on this part: Text(x, style=s) would colour all that is appended."""
    out = Text()
    out.append(text, style=style)
    return out


def _line(text: Text) -> Text:
    # One terminal line per row, whatever the width: layout() counts on it.
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


class TreeReporter:
    """Drives Live from events; see the module docstring."""

    def __init__(self, *, console: Console, err: TextIO, verbose: bool = False, clock: Clock = time.monotonic,
                 prefixed: bool = False) -> None:
        self.console = console
        self.prefixed = prefixed  # task_lines as `[task] line`, else as they are
        self.err = err
        self.verbose = verbose
        self.clock = clock
        self.board = Board()
        self.lock = threading.Lock()
        self.view = TreeView(self.board, self.lock, clock)
        self._live: Optional[Live] = None
        self._held: List[str] = []  # err lines held back while the display is live
        self._plan_counts: Optional[Dict[TaskState, int]] = None
        self._calm = False  # a run with nothing to do: its summary line alone says so

    # --- the Reporter protocol ----------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run_started(event)
        elif isinstance(event, RunFinished):
            self._run_finished(event)
        elif isinstance(event, Notice):
            self._notice(event)
        elif isinstance(event, TaskLines):
            self._task_lines(event)
        else:
            self._task_event(event)

    def close(self) -> None:
        """Stop the display (also after Ctrl-C or a crash) and write what was held back."""
        self._stop()
        self._flush_held()

    # --- events ------------------------------------------------------------

    def _run_started(self, event: RunStarted) -> None:
        if event.dry_run:
            self._print_plan(event)
            return
        with self.lock:
            self.board.plan(event.flow_name, event.tasks, self.clock())
        if not self.verbose and not any(t.will_run or t.blocked_by for t in event.tasks):
            # Nothing will run: one calm line at the end, not a tree of fresh tasks (-v lists them).
            self._calm = True
            return
        self._live = Live(
            self.view,
            console=self.console,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _task_event(self, event: Event) -> None:
        now = self.clock()
        with self.lock:
            if isinstance(event, TaskStarted):
                self.board.started(event, now)
            elif isinstance(event, TaskOutput):
                self.board.output(event.task, event.line)
            elif isinstance(event, TaskPlaced):
                self.board.placed(event.task, event.worker)
            elif isinstance(event, TaskWaiting):
                self.board.waiting(event.task, event.paths, now)
            elif isinstance(event, TaskFinished):
                self.board.finished(event, now)
            elif isinstance(event, RunInterrupted):
                self.board.interrupted(event, now)
        if isinstance(event, TaskFinished) and event.status is TaskState.FAILED and not event.will_retry:
            self._to_err(tail_report(event))

    def _task_lines(self, event: TaskLines) -> None:
        """Printed once, above the live tree (rich's Live keeps itself below what is printed)."""
        lines = list(event.lines)
        if event.omitted:
            lines.insert(0, f"… {plural(event.omitted, 'earlier line')} left out: the task's log has them")
        prefix = f"[{event.task}] " if self.prefixed else ""
        # from_ansi keeps a task's colours and drops escapes that would move the cursor under Live.
        self.console.print(Text.from_ansi("\n".join(prefix + line for line in lines)))

    def _notice(self, event: Notice) -> None:
        line = f"{event.level}: {event.message}"
        if self._live is not None:
            with self.lock:
                self.board.notices.append(line)
        self._to_err([line])

    def _run_finished(self, event: RunFinished) -> None:
        if event.dry_run:
            self.console.print(Text(dry_run_summary(self._plan_counts or dict.fromkeys(PLAN_STATES, 0))))
            return
        with self.lock:
            self.board.finish(event, self.clock())
        # The lock is released first: Live's last refresh renders the view, which takes it.
        self._stop()
        self._flush_held()
        ok = event.result is RunResult.SUCCESS
        style = "bold green" if ok else "bold red"
        self.console.print(Text(f"{'✓' if ok else '✗'} {summary_text(event)}", style=style))

    # --- the dry-run plan ------------------------------------------------------

    def _print_plan(self, event: RunStarted) -> None:
        """What would run and why, as a static tree: the answer of `-n`."""
        entries = plan_entries(event.tasks)
        self._plan_counts = plan_counts(entries)
        tree = Tree(Text(f"{event.flow_name} — dry run of {plural(len(entries), 'task')}", style="bold"), guide_style="dim")
        groups = groups_of(event.tasks)
        by_group: Dict[str, List[PlanEntry]] = {}
        for entry in entries:
            by_group.setdefault(entry.task.group, []).append(entry)
        # Tasks without a matrix sit directly under the root and share one name column.
        singles = [m[0].task.name for m in by_group.values() if len(m) == 1 and self._listed(m[0])]
        single_width = max(map(len, singles), default=0)
        for group, members in by_group.items():
            self._plan_group(tree, group, members, groups, single_width, event.commands)
        self.console.print(tree)

    def _listed(self, entry: PlanEntry) -> bool:
        return self.verbose or entry.state is not TaskState.FRESH

    def _plan_group(self, tree: Tree, group: str, members: List[PlanEntry], groups: TaskGroups, single_width: int,
                    commands: Mapping[str, str]) -> None:
        shown = [e for e in members if self._listed(e)]
        if not shown:
            return  # all fresh: counted in the summary line
        parent = tree
        width = single_width if len(members) == 1 else max(len(e.task.name) for e in shown)
        if len(members) > 1:
            counts = plan_counts(members)
            words = [f"{n} {_PLAN_WORDS[s]}" for s, n in counts.items() if n]
            parent = tree.add(_styled(group, "bold").append(f"  {' · '.join(words)}", style="dim"))
        for entry in shown:
            self._plan_task(parent, entry, width, groups, commands.get(entry.task.name))

    def _plan_task(self, parent: Tree, entry: PlanEntry, width: int, groups: TaskGroups,
                   command: Optional[str]) -> None:
        # Printed once, not redrawn: long lines wrap instead of losing their end.
        icon, style = _PLAN_ICONS[entry.state]
        text = _styled(icon, style).append(" " + entry.task.name.ljust(width))
        if entry.state is TaskState.STALE:
            reasons = [str(r) for r in entry.reasons]
            node = parent.add(text.append(f"  {reasons[0]}" if reasons else ""))
            for reason in reasons[1:]:
                node.add(Text(reason, style="dim"))
        elif entry.state is TaskState.BLOCKED:
            node = parent.add(text.append(f"  {may_run_text(entry, groups, full=self.verbose)}", style="dim"))
        else:
            parent.add(text.append("  fresh", style="dim"))
            return
        lines = command_lines(command)
        if lines:
            node.add(Text("\n".join(lines), style="cyan"))

    # --- output ----------------------------------------------------------------

    def _stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
            if not self.console.is_terminal:
                # Live ends its last frame with a newline only on terminals.
                self.console.line()

    def _to_err(self, lines: List[str]) -> None:
        self._held.extend(lines)
        if self._live is None:
            self._flush_held()

    def _flush_held(self) -> None:
        if not self._held:
            return
        held, self._held = self._held, []
        self.err.write("".join(line + "\n" for line in held))
        self.err.flush()


_PLAN_ICONS = {
    TaskState.STALE: ("▶", "bold"),
    TaskState.BLOCKED: ("?", "yellow"),
    TaskState.FRESH: (ICONS[TaskState.FRESH], "dim"),
}
_PLAN_WORDS = {TaskState.STALE: "to run", TaskState.BLOCKED: "may run", TaskState.FRESH: "fresh"}
