"""The scheduler (flowmake/unattended/) driven by a clock that jumps, on real projects.

The runs are real (`flowmake run`'s own code through the CLI's ScheduledRuns)
and so is the journal: only time is simulated, so a night, a long run or a
week of downtime passes in a moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, List, Optional
from zoneinfo import ZoneInfo

import pytest

from flowmake.cli.unattended import ScheduledRuns
from flowmake.load.flowfile import load
from flowmake.model import ScheduleSpec
from flowmake.store.state import State
from flowmake.unattended.journal import ProjectJournal
from flowmake.unattended.scheduler import Scheduler
from flowmake.unattended.timetable import Due, Timetable, cursors_from_history, decide

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


class JumpingClock:
    """`wait` jumps to the moment asked for; `stop_after` waits end the scheduler as a SIGTERM would."""

    def __init__(self, start: datetime, *, stop_after: int, scheduler: Optional[Callable[[], Scheduler]] = None) -> None:
        self.moment = start
        self.stop_after = stop_after
        self.waits: List[datetime] = []
        self.scheduler = scheduler

    def now(self) -> datetime:
        return self.moment

    def wait(self, until: datetime) -> None:
        self.waits.append(until)
        if len(self.waits) > self.stop_after:
            assert self.scheduler is not None
            self.scheduler().request_stop("SIGTERM")
            return
        self.moment = max(self.moment, until)

    def wake(self) -> None:
        pass


def spec(name: str, cron: str, **kw: object) -> ScheduleSpec:
    return ScheduleSpec(name=name, cron=cron, targets=kw.pop("targets", ("a",)), **kw)  # type: ignore[arg-type]


# -- the pure decisions --------------------------------------------------------


def test_due_slots_across_the_spring_change_in_berlin() -> None:
    table = Timetable({"n": spec("n", "30 2 * * *", timezone="Europe/Berlin")},
                      {"n": datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)})
    assert table.next_wake() == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert table.due(datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) == []  # 01:59 CET
    due = table.due(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST: the slot pushed past the gap
    assert [d.slot.isoformat() for d in due] == ["2026-03-29T03:00:00+02:00"]
    assert table.due(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) == []  # and only once


def test_due_slots_across_the_autumn_change_run_a_fixed_time_once() -> None:
    table = Timetable({"n": spec("n", "30 2 * * *", timezone="Europe/Berlin")},
                      {"n": datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)})
    due = table.due(datetime(2026, 10, 25, 12, 0, tzinfo=UTC))
    assert len(due) == 1 and due[0].earlier == ()
    assert due[0].slot.isoformat() == "2026-10-25T02:30:00+02:00"


def test_overlap_skip_records_and_queue_runs_once() -> None:
    t = datetime(2026, 1, 1, 5, tzinfo=UTC)
    due = [Due("s", t, (t - timedelta(minutes=15),)), Due("q", t, (t - timedelta(minutes=15),))]
    specs = {"s": spec("s", "*/15 * * * *"), "q": spec("q", "*/15 * * * *", overlap="queue")}
    actions = decide(due, specs, busy="RUN1")
    assert [(a.kind, a.schedule, a.count) for a in actions] == [("skipped", "s", 2), ("run", "q", 1), ("skipped", "q", 1)]
    assert actions[0].reason == 'run RUN1 was in progress (overlap = "skip")'
    assert actions[1].queued
    again = decide([Due("q", t)], specs, busy="RUN2", queued={"q"})
    assert [a.kind for a in again] == ["skipped"] and "already has a run queued" in again[0].reason


def test_catch_up_after_downtime_runs_the_latest_missed_slot_once() -> None:
    t = datetime(2026, 1, 3, 5, tzinfo=UTC)
    missed = Due("n", t, (t - timedelta(days=2), t - timedelta(days=1)))
    specs = {"n": spec("n", "0 5 * * *", catch_up=True)}
    actions = decide([missed], specs, downtime=True)
    assert [(a.kind, a.slot, a.count) for a in actions] == [("run", t, 1), ("missed", t - timedelta(days=1), 2)]
    assert actions[0].catch_up and actions[0].trigger() == {"schedule": "n", "slot": t.isoformat(), "catch_up": True}
    quiet = decide([missed], {"n": spec("n", "0 5 * * *")}, downtime=True)
    assert [(a.kind, a.count) for a in quiet] == [("missed", 3)]


def test_cursors_come_from_the_last_slot_or_the_last_stop() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert cursors_from_history(["n"], [], now=now) == {"n": now}  # a first start misses nothing
    stop = datetime(2026, 1, 5, 12, tzinfo=UTC)
    records = [{"event": "stopped", "time": stop.timestamp()},
               {"event": "run", "schedule": "n", "slot": "2026-01-05T05:00:00+00:00"}]
    assert cursors_from_history(["n", "m"], records, now=now) == {"n": stop, "m": stop}
    records.append({"event": "run", "schedule": "n", "slot": "2026-01-06T05:00:00+00:00"})  # by `schedule fire`
    assert cursors_from_history(["n"], records, now=now)["n"] == datetime(2026, 1, 6, 5, tzinfo=UTC)


# -- the loop on a real project -----------------------------------------------


FLOWFILE = """
[tasks.a]
always = true
outputs = ["a.txt"]
run = "date +%s%N >> a.txt"

[schedules.nightly]
cron = "0 5 * * *"
targets = ["a"]
timezone = "Europe/Berlin"
catch_up = true

[schedules.quarter]
cron = "*/15 * * * *"
targets = ["a"]
overlap = "OVERLAP"
"""


def make_project(tmp_path: Path, *, overlap: str = "skip") -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "Flowfile.toml").write_text(FLOWFILE.replace("OVERLAP", overlap))
    return root


def serve(root: Path, clock: JumpingClock, *, names: Optional[List[str]] = None,
          run_takes: float = 0.0, stop_after_runs: Optional[int] = None) -> List[str]:
    flowfile = load(root / "Flowfile.toml")
    schedules = {n: s for n, s in flowfile.schedules.items() if names is None or n in names}
    real = ScheduledRuns(root / "Flowfile.toml", progress="plain", argv=["schedule", "run"])

    def run(spec, trigger, wait):  # type: ignore[no-untyped-def]
        outcome = real(spec, trigger, wait)
        clock.moment += timedelta(seconds=run_takes)  # a run that takes this long
        ran.append(trigger)
        if stop_after_runs is not None and len(ran) >= stop_after_runs:
            scheduler.request_stop("SIGTERM")  # as if it came between runs
        return outcome

    ran: List[object] = []

    said: List[str] = []
    scheduler = Scheduler(schedules, clock=clock, run=run, journal=ProjectJournal(root, warn=said.append),
                          say=said.append)
    clock.scheduler = lambda: scheduler
    assert scheduler.run() == 0
    return said


def journal(root: Path) -> List[dict]:
    state = State.open(root, warn=lambda m: None)
    try:
        return state.schedule_records()
    finally:
        state.close()


def test_the_scheduler_runs_each_slot_and_records_schedule_and_slot(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    clock = JumpingClock(datetime(2026, 3, 28, 3, 50, tzinfo=UTC), stop_after=3)  # 04:50 in Berlin
    said = serve(root, clock, names=["nightly"])
    assert [w.isoformat() for w in clock.waits[:3]] == [
        "2026-03-28T05:00:00+01:00", "2026-03-29T05:00:00+02:00", "2026-03-30T05:00:00+02:00"]
    records = journal(root)
    assert [r["event"] for r in records] == ["started", "run", "run", "run", "stopped"]
    assert [r["slot"] for r in records if r["event"] == "run"] == [
        "2026-03-28T05:00:00+01:00", "2026-03-29T05:00:00+02:00", "2026-03-30T05:00:00+02:00"]
    assert records[-1]["reason"] == "SIGTERM"
    assert len((root / "a.txt").read_text().splitlines()) == 3
    state = State.open(root, warn=lambda m: None)
    try:
        runs = state.runs()
    finally:
        state.close()
    assert {r.result for r in runs} == {"success"}
    assert runs[0].trigger == {"schedule": "nightly", "slot": "2026-03-30T05:00:00+02:00"}
    assert "schedule: SIGTERM: stopped between runs" in said


def test_overlap_skip_records_the_slots_a_long_run_covered(tmp_path: Path) -> None:
    root = make_project(tmp_path, overlap="skip")
    clock = JumpingClock(datetime(2026, 1, 1, 4, 59, tzinfo=UTC), stop_after=1)
    serve(root, clock, names=["quarter"], run_takes=40 * 60)  # each run outlasts two more slots
    records = journal(root)
    assert [r["event"] for r in records] == ["started", "run", "skipped", "stopped"]
    skipped = records[2]
    assert (skipped["slot"], skipped["first"], skipped["count"]) == (
        "2026-01-01T05:30:00+00:00", "2026-01-01T05:15:00+00:00", 2)
    assert skipped["reason"].startswith("run ") and 'was in progress (overlap = "skip")' in skipped["reason"]


def test_overlap_queue_runs_once_after_the_long_run(tmp_path: Path) -> None:
    root = make_project(tmp_path, overlap="queue")
    clock = JumpingClock(datetime(2026, 1, 1, 4, 59, tzinfo=UTC), stop_after=5)
    # Runs longer than the interval queue back to back: stop after the third.
    serve(root, clock, names=["quarter"], run_takes=40 * 60, stop_after_runs=3)
    records = journal(root)
    events = [(r["event"], r.get("queued", False)) for r in records]
    # 05:00 runs until 05:40; 05:30 runs queued (05:15 skipped) until 06:20; 06:15 queued (06:00 skipped)
    # until 07:00, when the stop comes: 07:00 was queued (06:30, 06:45 skipped) and is recorded as never run.
    assert [(e, q) for e, q in events] == [
        ("started", False), ("run", False), ("skipped", False), ("run", True), ("skipped", False), ("run", True),
        ("skipped", False), ("skipped", False), ("stopped", False)]
    assert [r["slot"][11:16] for r in records if r["event"] in ("run", "skipped")] == [
        "05:00", "05:15", "05:30", "06:00", "06:15", "06:45", "07:00"]
    assert "stopped (SIGTERM) before it ran" in records[-2]["reason"]
    assert len(clock.waits) == 1


def test_catch_up_after_a_simulated_downtime(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    # A first life: started on 1 Jan, ran the 05:00 slot on 2 Jan, stopped.
    first = JumpingClock(datetime(2026, 1, 2, 3, 0, tzinfo=UTC), stop_after=1)
    serve(root, first, names=["nightly"])
    # Down until 5 Jan 12:00: the slots of 3, 4 and 5 Jan were missed; the latest runs once.
    second = JumpingClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC), stop_after=0)
    said = serve(root, second, names=["nightly"])
    records = journal(root)
    tail = records[records.index(next(r for r in records[1:] if r["event"] == "started")):]
    assert [r["event"] for r in tail] == ["started", "missed", "run", "stopped"]
    assert tail[2]["slot"] == "2026-01-05T05:00:00+01:00" and tail[2]["catch_up"] is True
    assert (tail[1]["first"], tail[1]["slot"], tail[1]["count"]) == (
        "2026-01-03T05:00:00+01:00", "2026-01-04T05:00:00+01:00", 2)
    assert any("catching up" in line for line in said)


def test_without_catch_up_missed_slots_are_recorded_and_not_run(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "Flowfile.toml").write_text(FLOWFILE.replace("catch_up = true", "catch_up = false")
                                        .replace("OVERLAP", "skip"))
    serve(root, JumpingClock(datetime(2026, 1, 2, 3, 0, tzinfo=UTC), stop_after=1), names=["nightly"])
    serve(root, JumpingClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC), stop_after=0), names=["nightly"])
    records = journal(root)
    assert [r["event"] for r in records][-3:] == ["started", "missed", "stopped"]
    assert records[-2]["count"] == 3 and "catch_up = false" in records[-2]["reason"]


def test_a_slot_that_finds_another_run_holding_the_project_is_skipped(tmp_path: Path) -> None:
    from flowmake.store.lock import lock_project

    root = make_project(tmp_path)
    held = lock_project(root, wait=False)  # another flowmake run, as far as the scheduler can tell
    try:
        clock = JumpingClock(datetime(2026, 1, 1, 4, 59, tzinfo=UTC), stop_after=1)
        flowfile = load(root / "Flowfile.toml")
        said: List[str] = []
        j = ProjectJournal(root, warn=said.append)
        scheduler = Scheduler({"quarter": flowfile.schedules["quarter"]}, clock=clock,
                              run=ScheduledRuns(root / "Flowfile.toml", progress="plain", argv=[]),
                              journal=j, say=said.append)
        clock.scheduler = lambda: scheduler
        # The journal's own records wait for the lock too: release it as the scheduler stops.
        original = j.flush
        j.flush = lambda *, wait: (held.release(), original(wait=wait)) if wait else original(wait=False)  # type: ignore
        assert scheduler.run() == 0
    finally:
        held.release()
    records = journal(root)
    assert [r["event"] for r in records] == ["started", "skipped", "stopped"]
    assert "another flowmake run" in records[1]["reason"]


def test_an_edit_to_the_schedules_between_runs_is_picked_up(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    flowfile = load(root / "Flowfile.toml")
    nightly = flowfile.schedules["nightly"]
    clock = JumpingClock(datetime(2026, 1, 1, 3, 0, tzinfo=UTC), stop_after=3)
    edits = iter([None, {"nightly": nightly._replace(cron="0 6 * * *")}])
    said: List[str] = []
    scheduler = Scheduler({"nightly": nightly}, clock=clock,
                          run=ScheduledRuns(root / "Flowfile.toml", progress="plain", argv=[]),
                          journal=ProjectJournal(root, warn=said.append), say=said.append,
                          reload=lambda: next(edits, None))
    clock.scheduler = lambda: scheduler
    assert scheduler.run() == 0
    # The first wait (for 05:00 CET) was cut short by the edit: the slots that ran are at 06:00.
    assert [r["slot"] for r in journal(root) if r["event"] == "run"] == [
        "2026-01-01T06:00:00+01:00", "2026-01-02T06:00:00+01:00"]
    assert "schedule: the Flowfile's schedules changed; now: nightly" in said


# -- a rule for every input -------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flowmake.load.cron import Cron  # noqa: E402
from flowmake.unattended.scheduler import Outcome  # noqa: E402


class MemoryJournal:
    def __init__(self, history: List[dict]) -> None:
        self.history = history
        self.written: List[dict] = []

    def records(self):  # type: ignore[no-untyped-def]
        return self.history

    def write(self, body) -> None:  # type: ignore[no-untyped-def]
        self.written.append(dict(body))

    def flush(self, *, wait: bool) -> None:
        pass


@given(cron=st.sampled_from(["*/15 * * * *", "0 * * * *", "30 2 * * *", "0 5 * * 1-5", "*/7 3-5 * * *"]),
       zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
       overlap=st.sampled_from(["skip", "queue"]), catch_up=st.booleans(),
       downtime_hours=st.one_of(st.none(), st.integers(0, 80)),
       run_minutes=st.lists(st.integers(0, 300), min_size=1, max_size=12),
       start=st.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 11, 5), timezones=st.just(UTC)))
def test_every_slot_is_run_skipped_or_missed_exactly_once(cron: str, zone: str, overlap: str, catch_up: bool,
                                                          downtime_hours: Optional[int], run_minutes: List[int],
                                                          start: datetime) -> None:
    the = ScheduleSpec(name="s", cron=cron, targets=("a",), timezone=zone, overlap=overlap, catch_up=catch_up)
    history = [] if downtime_hours is None else [
        {"event": "stopped", "time": (start - timedelta(hours=downtime_hours)).timestamp()}]
    clock = JumpingClock(start, stop_after=len(run_minutes) + 2)
    durations = iter(run_minutes)

    ran: List[datetime] = []

    def run(spec, trigger, wait):  # type: ignore[no-untyped-def]
        ran.append(datetime.fromisoformat(trigger["slot"]))
        try:
            clock.moment += timedelta(minutes=next(durations))
        except StopIteration:
            scheduler.request_stop("SIGTERM")
        return Outcome(0, run_id="R")

    memory = MemoryJournal(history)
    scheduler = Scheduler({"s": the}, clock=clock, run=run, journal=memory, say=lambda line: None)
    clock.scheduler = lambda: scheduler
    assert scheduler.run() == 0
    covered: List[datetime] = []
    fires = Cron(cron, zone)
    first_cursor = start if downtime_hours is None else start - timedelta(hours=downtime_hours)
    for body in memory.written:
        if body["event"] == "run":
            continue
        if body["event"] in ("skipped", "missed"):
            last = datetime.fromisoformat(body["slot"])
            begin = datetime.fromisoformat(body.get("first", body["slot"]))
            span = fires.fires_between(begin - timedelta(seconds=1), last)
            assert len(span) == body["count"], body
            covered += span
    covered += ran
    instants = sorted(c.timestamp() for c in covered)
    assert len(instants) == len(set(instants)), "a slot accounted twice"
    if instants:
        end = datetime.fromtimestamp(instants[-1], UTC)
        expected = [f.timestamp() for f in fires.fires_between(first_cursor, end)]
        assert instants == expected, "every slot up to the last one accounted, none left out"
