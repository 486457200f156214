"""Words, icons and numbers that every text reporter writes the same way.

The plain and tree reporters must agree on how a duration, a failure, a run
summary or a dry-run plan reads, so the wording lives here once, as pure
functions of events. Nothing here imports rich: the plain and JSON reporters
use it and must start fast.
"""

from __future__ import annotations

import math
import re

from ..events import PlannedTask, RunFinished, RunResult, TaskFinished, TaskState
from ..events import plan_counts as count_plan
from ..model import Reason
from ..records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Dict, Iterable, List, Mapping, Optional, Sequence, TextIO, Tuple

# Shown instead of the rest of a long list; enough to recognise the run.
MAX_LISTED = 5


# Single-cell glyphs only: wide emoji (⏳) break column alignment in many terminals.
ICONS: Mapping[TaskState, str] = {
    TaskState.PENDING: "·",
    TaskState.WAITING: "…",
    TaskState.RUNNING: "▶",
    TaskState.RETRYING: "↻",
    TaskState.OK: "✓",
    TaskState.FRESH: "○",
    TaskState.FAILED: "✗",
    TaskState.SKIPPED: "–",
    TaskState.INTERRUPTED: "■",
    TaskState.RESTORED: "↓",
}

# Style names understood by both rich and plain.paint().
STYLES: Mapping[TaskState, str] = {
    TaskState.PENDING: "dim",
    TaskState.WAITING: "cyan",
    TaskState.RUNNING: "blue",
    TaskState.RETRYING: "yellow",
    TaskState.OK: "green",
    TaskState.FRESH: "dim",
    TaskState.FAILED: "bold red",
    TaskState.SKIPPED: "yellow",
    TaskState.INTERRUPTED: "red",
    TaskState.RESTORED: "green",
}

# Tasks that are always shown one per line, however large the run.
NOTABLE = frozenset({TaskState.WAITING, TaskState.RUNNING, TaskState.RETRYING, TaskState.FAILED, TaskState.INTERRUPTED})
DONE = frozenset({TaskState.OK, TaskState.RESTORED, TaskState.FRESH, TaskState.FAILED, TaskState.SKIPPED,
                  TaskState.INTERRUPTED})

# Order in which counts are listed in summaries: results first, then what is left.
COUNT_ORDER: Tuple[TaskState, ...] = (
    TaskState.OK,
    TaskState.RESTORED,
    TaskState.FRESH,
    TaskState.FAILED,
    TaskState.INTERRUPTED,
    TaskState.SKIPPED,
    TaskState.RUNNING,
    TaskState.RETRYING,
    TaskState.WAITING,
    TaskState.PENDING,
)

RESULT_WORDS: Mapping[RunResult, str] = {
    RunResult.SUCCESS: "done",
    RunResult.FAILED: "failed",
    RunResult.INTERRUPTED: "interrupted",
}

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def flush_streams(*streams: TextIO) -> None:
    """Flush what a reporter wrote; a closed pipe at exit must not hide the run's result."""
    for stream in streams:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_duration(seconds: float) -> str:
    """A finished duration: '0.05s', '1.2s', '2m05s', '1h02m'.

    Two decimals below 0.1 s so that a no-op run does not read '0.0s'. The
    unit is chosen on the rounded figure, so 0.0996 s reads '0.1s' like its
    neighbours, not '0.10s', and 59.97 s reads '1m00s', not '60.0s'.
    """
    if round(seconds, 2) < 0.1:
        return f"{max(seconds, 0.0):.2f}s"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_clock(seconds: float) -> str:
    """A running timer, '0:07', '12:30', '1:02:03': whole seconds, so it does not flicker."""
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


def clean_line(line: str) -> str:
    """A task's output line made safe to embed in our own display.

    Keeps what a terminal would finally show after carriage returns (progress
    bars), and drops escape sequences and control characters that would move
    the cursor or recolour the live view.
    """
    line = line.rstrip("\r\n")
    if "\r" in line:
        line = line.rsplit("\r", 1)[-1]
    line = _ANSI.sub("", line).replace("\t", "    ")
    return _CONTROL.sub("", line).strip()


def reasons_text(reasons: Sequence[Reason], *, full: bool = False) -> str:
    """The first reason and '(+N more)', or every reason when `full`."""
    if not reasons:
        return ""
    if full or len(reasons) == 1:
        return "; ".join(str(r) for r in reasons)
    return f"{reasons[0]} (+{len(reasons) - 1} more)"


def list_text(names: Sequence[str], *, full: bool = False) -> str:
    if full or len(names) <= MAX_LISTED:
        return ", ".join(names)
    return ", ".join(names[:MAX_LISTED]) + f" (+{len(names) - MAX_LISTED} more)"


def failure_text(event: TaskFinished) -> str:
    """Why a task failed, in words: 'exit 1' or the build loop's message."""
    if event.message:
        return event.message
    if event.exit_code is not None:
        return f"exit {event.exit_code}"
    return "failed"


def failure_detail(event: TaskFinished) -> str:
    """'exit 1 after 0.3s' plus the attempt when it was not the first."""
    text = f"{failure_text(event)} after {format_duration(event.duration)}"
    if event.attempt != 1:
        text += f" (attempt {event.attempt})"
    return text


def tail_report(event: TaskFinished) -> List[str]:
    """The lines printed on stderr for a failed task: a header and the log's tail."""
    what = failure_text(event)
    n = len(event.tail)
    if event.log is None and event.exit_code is not None:
        header = f"--- {event.task} failed ({what}), no output"  # a task that printed nothing has no log file
    elif event.log is None:
        header = f"--- {event.task} failed ({what})"
    elif n == 0:
        header = f"--- {event.task} failed ({what}), no output in {event.log}"
    else:
        lines = "last line" if n == 1 else f"last {n} lines"
        header = f"--- {event.task} failed ({what}), {lines} of {event.log}:"
    return [header, *(line.rstrip("\r\n") for line in event.tail)]


def stopping_text(tasks: int, kill_in: float) -> str:
    """What an interrupt is doing during the grace period: 'interrupted: stopping 3 tasks, SIGKILL in 5 s'."""
    if kill_in <= 0:
        return f"interrupted: killing {plural(tasks, 'task')}"
    return f"interrupted: stopping {plural(tasks, 'task')}, SIGKILL in {math.ceil(kill_in)} s"


def interrupted_detail(event: TaskFinished) -> str:
    """'interrupted (killed by signal SIGTERM) after 1.2s': a task the interrupt cut short."""
    why = event.message if event.message and event.message != "interrupted" else ""
    return "interrupted" + (f" ({why})" if why else "") + f" after {format_duration(event.duration)}"


def counts_text(counts: Mapping[str, int]) -> str:
    """'3 ok, 1 failed, 1 skipped, 8 fresh': the order of the run summary, zeros left out."""
    order = (TaskState.OK, TaskState.RESTORED, TaskState.FAILED, TaskState.INTERRUPTED, TaskState.SKIPPED,
             TaskState.FRESH)
    parts = [f"{counts.get(s.value, 0)} {s.value}" for s in order if counts.get(s.value, 0)]
    return ", ".join(parts)


def phase_counts_text(counts: Mapping[TaskState, int]) -> str:
    """'280 ok, 32 pending': counts of live phases, in COUNT_ORDER, zeros left out."""
    return ", ".join(f"{counts[p]} {p.value}" for p in COUNT_ORDER if counts.get(p, 0))


def summary_text(event: RunFinished) -> str:
    """The last line of a run: 'done: 3 ok, 9 fresh in 2.1s' or 'nothing to do: ...'."""
    counts = event.counts
    worked = sum(counts.get(s.value, 0) for s in (TaskState.OK, TaskState.RESTORED, TaskState.FAILED,
                                                   TaskState.INTERRUPTED, TaskState.SKIPPED))
    if event.result is RunResult.SUCCESS and worked == 0:
        fresh = counts.get(TaskState.FRESH.value, 0)
        what = f"{plural(fresh, 'task')} fresh" if fresh else "no tasks selected"
        return f"nothing to do: {what} ({format_duration(event.duration)})"
    word = RESULT_WORDS[event.result]
    return f"{word}: {counts_text(counts) or 'no tasks finished'} in {format_duration(event.duration)}"


# --- the dry-run plan -------------------------------------------------------


class PlanEntry(NamedTuple):
    task: PlannedTask
    state: TaskState
    reasons: Tuple[Reason, ...]  # its own (PlannedTask.reasons): blocked_by says what it waits for


def plan_entries(tasks: Iterable[PlannedTask]) -> List[PlanEntry]:
    return [PlanEntry(task, task.state, task.reasons) for task in tasks]


def plan_counts(entries: Iterable[PlanEntry]) -> Dict[TaskState, int]:
    """events.plan_counts, keyed by TaskState."""
    return {TaskState(state): n for state, n in count_plan(entry.task for entry in entries).items()}


def plan_counts_text(counts: Mapping[TaskState, int]) -> str:
    """'3 to run, 2 may run after them, 7 fresh'."""
    parts = [f"{counts[TaskState.STALE]} to run"]
    if counts[TaskState.BLOCKED]:
        parts.append(f"{counts[TaskState.BLOCKED]} may run after them")
    parts.append(f"{counts[TaskState.FRESH]} fresh")
    return ", ".join(parts)


def command_lines(command: Optional[str]) -> List[str]:
    """A dry run's command as make -n prints it, after a `$ ` (a multi-line one indented below it)."""
    if not command:
        return []
    lines = command.strip("\n").splitlines() or [""]
    return ["$ " + lines[0], *("  " + line for line in lines[1:])]


def dry_run_summary(counts: Mapping[TaskState, int]) -> str:
    if not counts[TaskState.STALE] and not counts[TaskState.BLOCKED]:
        fresh = counts[TaskState.FRESH]
        what = f"{plural(fresh, 'task')} fresh" if fresh else "no tasks selected"
        return f"nothing to do: {what}"
    return f"dry run: {plan_counts_text(counts)} (nothing was run)"


class TaskGroups(NamedTuple):
    """Which selected tasks are variants of which group, both ways, built once per run."""

    variants: Mapping[str, Sequence[str]]
    group_of: Mapping[str, str]


def groups_of(tasks: Iterable[PlannedTask]) -> TaskGroups:
    variants: Dict[str, List[str]] = {}
    group_of: Dict[str, str] = {}
    for task in tasks:
        variants.setdefault(task.group, []).append(task.name)
        group_of[task.name] = task.group
    return TaskGroups(variants, group_of)


def group_names(names: Sequence[str], groups: TaskGroups) -> List[str]:
    """Names with complete matrix groups folded: every variant of extract reads 'extract'.

    Only a group whose every selected variant is listed is folded, so
    "may run after: extract" is exact rather than an abbreviation.
    """
    present = set(names)
    out: List[str] = []
    folded = set()
    for name in names:
        group = groups.group_of.get(name, name)
        variants = groups.variants.get(group, ())
        if len(variants) > 1 and present.issuperset(variants):
            if group not in folded:
                folded.add(group)
                out.append(group)
        else:
            out.append(name)
    return out


def may_run_text(entry: PlanEntry, groups: TaskGroups, *, full: bool = False) -> str:
    return "may run after: " + list_text(group_names(entry.task.blocked_by, groups), full=full)


def no_color_env(environ: Mapping[str, str]) -> bool:
    """NO_COLOR (https://no-color.org): any non-empty value turns colour off."""
    return bool(environ.get("NO_COLOR", ""))
