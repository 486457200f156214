"""`flowmake schedule run`: the foreground scheduler, a loop over the timetable.

It sleeps until the next slot, asks `timetable.decide` what to do about the
slots that came due, runs the due schedules' targets one after another
(never two runs of the project at once), and records in the journal what
it did: its start and stop, each run's schedule and slot (in the run's own
record), and each slot it skipped or found missed, with the reason.

Everything outside the loop is injected: the clock (`now`, `wait`), the
function that runs a schedule's targets (the CLI's, which is the same code
as `flowmake run`), and the journal. Tests give it a clock that jumps and
read what it recorded; `flowmake schedule run` gives it the wall clock.

Signals: SIGTERM, SIGINT or SIGHUP between runs stop it at once (exit 0).
During a run the run handles them exactly as it does for `flowmake run`: its
tasks are stopped and not recorded as done, the run is recorded as
interrupted, and the scheduler stops after it with the run's exit code.
"""

from __future__ import annotations

import os
import select
import signal
from datetime import datetime, timezone
from typing import Callable, List, Mapping, NamedTuple, Optional, Protocol, Sequence, Set

from ..errors import EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM
from ..model import ScheduleSpec
from .timetable import Action, Timetable, cursors_from_history, decide

INTERRUPTED = {EXIT_SIGINT: "SIGINT", EXIT_SIGTERM: "SIGTERM", EXIT_SIGHUP: "SIGHUP"}


class Outcome(NamedTuple):
    """How a scheduled run ended: its exit code, its id, and why it did not start (a held lock)."""

    code: int
    run_id: Optional[str] = None
    locked: Optional[str] = None  # the lock holder's message: nothing ran


class Clock(Protocol):
    def now(self) -> datetime: ...

    def wait(self, until: datetime) -> None:
        """Return at `until`, or sooner once `wake` was called."""

    def wake(self) -> None: ...


class Journal(Protocol):
    def records(self) -> Sequence[Mapping[str, object]]: ...

    def write(self, body: Mapping[str, object]) -> None: ...

    def flush(self, *, wait: bool) -> None: ...


RunFn = Callable[[ScheduleSpec, Mapping[str, object], bool], Outcome]


class WallClock:
    """The real clock; `wake` (from a signal handler) ends a wait through a pipe, at once."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wait(self, until: datetime) -> None:
        # At most a minute at a time: a wall clock set forward or back is noticed soon.
        left = min((until - self.now()).total_seconds(), 60.0)
        if left > 0:
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                os.read(self._read, 64)

    def wake(self) -> None:
        try:
            os.write(self._write, b"x")
        except BlockingIOError:
            pass  # already woken


class Scheduler:
    def __init__(self, schedules: Mapping[str, ScheduleSpec], *, clock: Clock, run: RunFn, journal: Journal,
                 say: Callable[[str], None],
                 reload: Optional[Callable[[], Optional[Mapping[str, ScheduleSpec]]]] = None) -> None:
        self.specs = dict(schedules)
        # Between runs: the schedules as the Flowfile says now (None: unchanged, or it does not load).
        self._reload = reload
        self.clock = clock
        self._run = run
        self.journal = journal
        self.say = say
        self.stop_signal: Optional[str] = None
        self._queue: List[Action] = []
        self._queued: Set[str] = set()

    def request_stop(self, name: str) -> None:
        if self.stop_signal is None:
            self.stop_signal = name
        self.clock.wake()

    def serve(self) -> int:
        """`run` with SIGTERM, SIGINT and SIGHUP asking it to stop (the loop's own handlers)."""
        handled = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGHUP: "SIGHUP"}
        previous = {s: signal.getsignal(s) for s in handled}
        for s, name in handled.items():
            signal.signal(s, lambda _n, _f, name=name: self.request_stop(name))
        try:
            return self.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def run(self) -> int:
        now = self.clock.now()
        cursors = cursors_from_history(self.specs, self.journal.records(), now=now)
        self.journal.write({"event": "started", "time": now.timestamp(), "pid": os.getpid(),
                            "schedules": list(self.specs)})
        timetable = Timetable(self.specs, cursors)
        self.say(f"schedule: {len(self.specs)} schedule{'s' if len(self.specs) != 1 else ''} "
                 f"({', '.join(self.specs)}); stop with SIGTERM or Ctrl-C")
        self._take(decide(timetable.due(now), self.specs, downtime=True), now)
        code = 0
        while self.stop_signal is None:
            if self._queue:
                action = self._queue.pop(0)
                self._queued.discard(action.schedule)
                outcome = self._start(action)
                if outcome.code in INTERRUPTED:
                    self.say(f"schedule: {INTERRUPTED[outcome.code]} during run {outcome.run_id or ''} of "
                             f"{action.schedule}: it was interrupted as Ctrl-C would (its running tasks stopped, "
                             "none recorded as done); stopping")
                    self.stop_signal = self.stop_signal or INTERRUPTED[outcome.code]
                    code = outcome.code
                    break
                after = self.clock.now()
                busy = outcome.run_id or f"of schedule {action.schedule}"
                self._take(decide(timetable.due(after), self.specs, busy=busy, queued=self._queued), after)
                continue
            self.journal.flush(wait=False)
            self._pick_up_edits(timetable)
            wake = timetable.next_wake()
            if wake is None:
                self.say("schedule: no slot will ever come due; stopping")
                break
            self.say(f"schedule: waiting until {_shown(wake)} ({', '.join(_due_at(timetable, wake))})")
            edited = False
            while self.stop_signal is None and self.clock.now() < wake and not edited:
                self.clock.wait(wake)
                edited = self._pick_up_edits(timetable)
            if edited:
                continue  # wait again, for the new timetable's next slot
            if self.stop_signal is None:
                now = self.clock.now()
                self._take(decide(timetable.due(now), self.specs, queued=self._queued), now)
        stopped = self.clock.now()
        for action in self._queue:  # queued behind the last run: never started
            self._note(action._replace(kind="skipped", reason=f"the scheduler stopped ({self.stop_signal}) "
                                                              "before it ran"), stopped)
        if code == 0:
            self.say(f"schedule: {self.stop_signal or 'done'}: stopped between runs")
        self.journal.write({"event": "stopped", "time": stopped.timestamp(),
                            "reason": self.stop_signal or "no slot to come"})
        self.journal.flush(wait=True)
        return code

    def _pick_up_edits(self, timetable: Timetable) -> bool:
        fresh = self._reload() if self._reload is not None else None
        if fresh is None or dict(fresh) == self.specs:
            return False
        self.specs = dict(fresh)
        timetable.replace(self.specs, self.clock.now())
        self._queue = [a for a in self._queue if a.schedule in self.specs]
        self.say(f"schedule: the Flowfile's schedules changed; now: {', '.join(self.specs) or '(none)'}")
        return True

    def _take(self, actions: Sequence[Action], now: datetime) -> None:
        for action in actions:
            if action.kind == "run":
                self._queue.append(action)
                self._queued.add(action.schedule)
            else:
                self._note(action, now)

    def _note(self, action: Action, now: datetime) -> None:
        self.journal.write(action.record(now))
        slots = f"{action.count} slots up to {_shown(action.slot)}" if action.count > 1 else f"slot {_shown(action.slot)}"
        self.say(f"schedule: {action.schedule}: {action.kind} {slots}: {action.reason}")

    def _start(self, action: Action) -> Outcome:
        spec = self.specs[action.schedule]
        what = " (catching up)" if action.catch_up else " (queued)" if action.queued else ""
        self.say(f"schedule: {action.schedule}: slot {_shown(action.slot)}{what}: running "
                 f"{' '.join(spec.targets) or 'the default targets'}")
        self.journal.flush(wait=False)
        outcome = self._run(spec, action.trigger(), spec.overlap == "queue")
        if outcome.locked is not None:
            self._note(action._replace(kind="skipped", reason=f"{outcome.locked} (overlap = \"skip\")"),
                       self.clock.now())
        else:
            self.say(f"schedule: {action.schedule}: run {outcome.run_id or '?'} ended with exit code {outcome.code}")
        return outcome


def _shown(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").rstrip()


def _due_at(timetable: Timetable, wake: datetime) -> List[str]:
    return [name for name, cron in timetable.crons.items()
            if any(abs((t - wake).total_seconds()) < 1 for t in cron.next_fires(timetable.cursors[name], 1))]
