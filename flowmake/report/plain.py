"""The plain reporter: one line per event, for CI logs and pipes.

Lines are short and grep-friendly: a status word, the task name in an aligned
column, then the detail. No timestamps (CI adds its own) and no escape codes
unless colour is asked for. Progress and the summary go to `out`; notices and
failed tasks' log tails go to `err` as they happen, so a log read from the top
shows each failure next to its cause. It writes with plain `write()` calls and
never imports rich, which keeps start-up fast.
"""

from __future__ import annotations

from operator import itemgetter

from ..events import (
    PLAN_STATES,
    Notice,
    RunFinished,
    RunInterrupted,
    RunStarted,
    TaskFinished,
    TaskLines,
    TaskOutput,
    TaskPlaced,
    TaskStarted,
    TaskState,
    TasksFresh,
    TaskWaiting,
)
from ..events import plan_counts as count_plan
from ..records import TYPE_CHECKING
from .common import (
    PlanEntry,
    TaskGroups,
    command_lines,
    dry_run_summary,
    failure_detail,
    flush_streams,
    format_duration,
    groups_of,
    interrupted_detail,
    list_text,
    may_run_text,
    plan_counts,
    plan_entries,
    plural,
    reasons_text,
    stopping_text,
    summary_text,
    tail_report,
)

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Dict, List, Optional, TextIO, Tuple

    from ..events import Event

# Width of the status word column: fits "FAILED"; "waiting" would not, hence "wait".
WORD_WIDTH = 6
_FRESH = TaskState.FRESH
_NAME = itemgetter(0)  # PlannedTask.name
# Task names shorter than this still align with the sample in the docs; longer
# ones widen the column up to a cap, past which alignment gives way to width.
MIN_NAME_WIDTH = 16
MAX_NAME_WIDTH = 40

_SGR = {"green": "32", "red": "31", "bold red": "1;31", "yellow": "33", "dim": "2", "cyan": "36", "bold": "1"}


def paint(text: str, style: str, color: bool) -> str:
    if not color or style not in _SGR:
        return text
    return f"\x1b[{_SGR[style]}m{text}\x1b[0m"


class PlainReporter:
    """Writes one line per event; see the module docstring."""

    takes_tasks_fresh = True  # many fresh tasks as one event (events.TasksFresh): only -v shows them

    def __init__(self, *, out: TextIO, err: TextIO, color: bool = False, quiet: bool = False, verbose: bool = False,
                 prefixed: bool = False) -> None:
        self.out = out
        self.prefixed = prefixed  # task_lines as `[task] line`, else as they are
        self.err = err
        self.color = color
        self.quiet = quiet
        self.verbose = verbose
        self.name_width = MIN_NAME_WIDTH
        self._waiting: Dict[str, Tuple[str, ...]] = {}
        self._plan_counts: Optional[Dict[TaskState, int]] = None

    # --- the Reporter protocol --------------------------------------------

    def handle(self, event: Event) -> None:
        if event.__class__ is TaskFinished and event.status is _FRESH and not self.verbose:  # type: ignore[union-attr]
            return  # shown only in the counts: on a no-op over a big graph, nearly every event is one
        if event.__class__ is TasksFresh:
            if self.verbose and not self.quiet:
                for name in event.tasks:  # type: ignore[union-attr]
                    self._line("fresh", "dim", name, "")
            return
        if isinstance(event, RunStarted):
            self._run_started(event)
        elif isinstance(event, TaskStarted):
            self._task_started(event)
        elif isinstance(event, TaskWaiting):
            self._task_waiting(event)
        elif isinstance(event, TaskFinished):
            self._task_finished(event)
        elif isinstance(event, Notice):
            self._write(self.err, f"{event.level}: {event.message}")
        elif isinstance(event, RunFinished):
            self._run_finished(event)
        elif isinstance(event, TaskLines):
            self._task_lines(event)
        elif isinstance(event, RunInterrupted):
            self._write(self.out, paint(stopping_text(len(event.tasks), event.kill_in), "bold red", self.color))
        elif isinstance(event, TaskOutput):
            pass  # the latest line, sampled: task_lines carry every line
        elif isinstance(event, TaskPlaced) and not self.quiet:
            self._line("on", "cyan", event.task, event.worker)  # a cluster's worker (docs/scaling.md)

    def close(self) -> None:
        flush_streams(self.out, self.err)

    # --- events ------------------------------------------------------------

    def _run_started(self, event: RunStarted) -> None:
        # C loops (map, max): a no-op at 100,000 tasks spent ~8 ms here on a list of names.
        self.name_width = min(max(MIN_NAME_WIDTH, max(map(len, map(_NAME, event.tasks)), default=0)), MAX_NAME_WIDTH)
        if event.dry_run:
            self._print_plan(event)
            return
        if self.quiet:
            return
        counts = count_plan(event.tasks)  # not plan_entries: a no-op's one line needs no entry per task
        to_run, may_run = counts[TaskState.STALE.value], counts[TaskState.BLOCKED.value]
        parts = [plural(len(event.tasks), "task"), f"{to_run} to run"]
        if may_run:
            parts.append(f"{may_run} may run")
        parts.append(f"-j {event.jobs}")
        self._write(self.out, f"flowmake: {event.flow_name} — {', '.join(parts)} (run {event.run_id})")

    def _task_started(self, event: TaskStarted) -> None:
        if self.quiet:
            return
        detail = reasons_text(event.reasons, full=self.verbose)
        if event.attempt != 1:
            detail = f"attempt {event.attempt}" + (f": {detail}" if detail else "")
        self._line("start", "bold", event.task, detail)

    def _task_waiting(self, event: TaskWaiting) -> None:
        # A sensor re-reports on every poll; only a change of what it waits for is news.
        if self._waiting.get(event.task) == event.paths:
            return
        self._waiting[event.task] = event.paths
        if self.quiet or not event.paths:
            return
        self._line("wait", "cyan", event.task, "for " + list_text(event.paths, full=self.verbose))

    def _task_lines(self, event: TaskLines) -> None:
        lines = list(event.lines)
        if event.omitted:
            lines.insert(0, f"… {plural(event.omitted, 'earlier line')} left out: the task's log has them")
        prefix = f"[{event.task}] " if self.prefixed else ""
        self.out.write("".join(f"{prefix}{line}\n" for line in lines))
        self.out.flush()

    def _task_finished(self, event: TaskFinished) -> None:
        self._waiting.pop(event.task, None)
        status = event.status
        if status is TaskState.FAILED:
            self._task_failed(event)
        elif self.quiet:
            return
        elif status is TaskState.INTERRUPTED:
            # Cut short by Ctrl-C, not broken: no FAILED, no log tail; the log is there to read.
            detail = interrupted_detail(event) + (f" — log: {event.log}" if event.log else "")
            self._line("stop", "red", event.task, detail)
        elif status is TaskState.OK:
            detail = format_duration(event.duration)
            if event.attempt != 1:
                detail += f" (attempt {event.attempt})"
            self._line("ok", "green", event.task, detail)
        elif status is TaskState.RESTORED:
            self._line("cached", "green", event.task,
                       f"{event.message or 'restored from cache'} in {format_duration(event.duration)}")
        elif status is TaskState.SKIPPED:
            self._line("skip", "yellow", event.task, event.message or "")
        elif status is TaskState.FRESH and self.verbose:
            self._line("fresh", "dim", event.task, "")

    def _task_failed(self, event: TaskFinished) -> None:
        detail = failure_detail(event)
        if event.will_retry:
            if not self.quiet:
                self._line("retry", "yellow", event.task, detail + ", will retry")
            return
        if event.log:
            detail += f" — log: {event.log}"
        self._line("FAILED", "bold red", event.task, detail)
        for line in tail_report(event):
            self._write(self.err, line)

    def _run_finished(self, event: RunFinished) -> None:
        if event.dry_run:
            counts = self._plan_counts or dict.fromkeys(PLAN_STATES, 0)
            self._write(self.out, dry_run_summary(counts))
            return
        self._write(self.out, summary_text(event))

    # --- the dry-run plan ----------------------------------------------------

    def _print_plan(self, event: RunStarted) -> None:
        """What would run and why: the answer of `-n`, so printed even when quiet."""
        entries = plan_entries(event.tasks)
        self._plan_counts = plan_counts(entries)
        self._write(self.out, f"flowmake: {event.flow_name} — dry run of {plural(len(entries), 'task')}")
        groups = groups_of(event.tasks)
        for entry in entries:
            for word, style, name, detail in self._plan_lines(entry, groups):
                self._line(word, style, name, detail)
            for line in command_lines(event.commands.get(entry.task.name)):
                self._line("", "", "", line)

    def _plan_lines(self, entry: PlanEntry, groups: TaskGroups) -> List[Tuple[str, str, str, str]]:
        name = entry.task.name
        if entry.state is TaskState.STALE:
            # Every reason, one per line: a dry run is the place to explain.
            reasons = [str(r) for r in entry.reasons] or [""]
            return [("run", "bold", name, reasons[0])] + [("", "", "", r) for r in reasons[1:]]
        if entry.state is TaskState.BLOCKED:
            return [("maybe", "yellow", name, may_run_text(entry, groups, full=self.verbose))]
        return [("fresh", "dim", name, "")] if self.verbose else []

    # --- output --------------------------------------------------------------

    def _line(self, word: str, style: str, name: str, detail: str) -> None:
        head = paint(word.ljust(WORD_WIDTH), style, self.color)
        text = f"{head} {name.ljust(self.name_width)} {detail}" if detail else f"{head} {name}"
        self._write(self.out, text.rstrip())

    def _write(self, stream: TextIO, line: str) -> None:
        stream.write(line + "\n")
        # Flushed per line: a CI log or a `tail -f` must see progress as it happens.
        stream.flush()
