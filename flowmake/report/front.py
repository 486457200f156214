"""The tree's front: a run with nothing to do answers in one line, without rich.

On a terminal a run that finds every task fresh shows one calm line, not a
tree (docs/cli.md). Behind that line the tree reporter used to import rich
(~50 ms) and fold every fresh task into its board: ~0.5 s of a no-op at
100,000 tasks, more than the rest of it. So `TreeFront` stands in for it
until RunStarted says what the run is: a calm run (not a dry run, not
verbose, nothing that will or may run) is answered here with the line the
tree would print, byte for byte; any other run, and anything unexpected in
a calm one (a task's output, a failure, an event this module does not
know), hands over to the real TreeReporter, replaying RunStarted first, so
that what is shown never depends on this shortcut.
"""

from __future__ import annotations

from operator import attrgetter

from ..events import Notice, RunFinished, RunResult, RunStarted, TaskFinished, TasksFresh, TaskState
from ..records import TYPE_CHECKING
from .common import flush_streams, summary_text

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Callable, List, Optional, TextIO

    from ..events import Event
    from . import Reporter

_will_run = attrgetter("will_run")
_blocked_by = attrgetter("blocked_by")
# What rich writes for Text(..., style="bold green" / "bold red") when colour is on.
_SGR = {True: "\x1b[1;32m", False: "\x1b[1;31m"}


def calm(event: RunStarted, verbose: bool) -> bool:
    """True when the tree would show nothing but its last line (tree.TreeReporter._run_started)."""
    if event.dry_run or verbose:
        return False
    # C-level scans: at 100,000 tasks a generator over them costs several ms.
    return not any(map(_will_run, event.tasks)) and not any(map(_blocked_by, event.tasks))


class TreeFront:
    """A Reporter that is the tree reporter, built (and rich imported) only when a run needs it."""

    def __init__(self, build: Callable[[], Reporter], *, out: TextIO, err: TextIO, color: bool,
                 verbose: bool) -> None:
        self._build = build
        self.out = out
        self.err = err
        self.color = color
        self.verbose = verbose
        self.inner: Optional[Reporter] = None
        self._started: Optional[RunStarted] = None  # a calm run's RunStarted, replayed on hand-over
        self._fresh: List[TasksFresh] = []  # and its fresh tasks

    @property
    def takes_tasks_fresh(self) -> bool:
        """A calm run's fresh tasks as one event (cli/guard.py): only its summary line counts them."""
        return self.inner is None and self._started is not None

    def handle(self, event: Event) -> None:
        if self.inner is not None:
            self.inner.handle(event)
        elif self._started is None:
            if event.__class__ is RunStarted and calm(event, self.verbose):  # type: ignore[arg-type]
                self._started = event  # type: ignore[assignment]
            else:
                self._hand_over(event)
        elif event.__class__ is TaskFinished and event.status is TaskState.FRESH:  # type: ignore[union-attr]
            pass  # counted in the summary line, as the tree counts them
        elif event.__class__ is TasksFresh:
            self._fresh.append(event)  # type: ignore[arg-type]
        elif event.__class__ is Notice:
            self.err.write(f"{event.level}: {event.message}\n")  # type: ignore[union-attr]
            self.err.flush()
        elif event.__class__ is RunFinished and not event.dry_run:  # type: ignore[union-attr]
            self._summary(event)  # type: ignore[arg-type]
        else:
            self._hand_over(event)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
            return
        flush_streams(self.out, self.err)

    def _hand_over(self, event: Event) -> None:
        inner = self.inner = self._build()
        if self._started is not None:
            inner.handle(self._started)
        for bulk in self._fresh:
            for finished in bulk.each():
                inner.handle(finished)
        inner.handle(event)

    def _summary(self, event: RunFinished) -> None:
        ok = event.result is RunResult.SUCCESS
        line = f"{'✓' if ok else '✗'} {summary_text(event)}"
        self.out.write(f"{_SGR[ok]}{line}\x1b[0m\n" if self.color else line + "\n")
        self.out.flush()
