"""Which slots of which schedules are due, and what to do about each: the scheduler's rebuilder.

Pure: every function takes the moment it works from and the history read
back from the journal, and returns decisions as data, so tests drive it
across a daylight-saving change, a long run or a week of downtime without
waiting. The loop that acts on the decisions is `scheduler`.

Vocabulary: a *slot* is one fire time of a schedule. Each schedule has a
*cursor*, the moment up to which its slots have been dealt with (run,
skipped or recorded as missed); a slot after the cursor and not after now is
*due*. After a restart the cursor comes from the journal: the later of the
schedule's last slot on record and the scheduler's last start or stop, so
that the slots in between are known to have been missed (and none are, the
first time a scheduler ever starts in a project).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from ..load.cron import Cron
from ..model import ScheduleSpec


class Due(NamedTuple):
    schedule: str
    slot: datetime  # the latest due slot
    earlier: Tuple[datetime, ...] = ()  # due slots before it, oldest first


class Action(NamedTuple):
    """What the loop does for a due slot: "run" it, or record it as "skipped" or "missed"."""

    kind: str
    schedule: str
    slot: datetime  # for a record of several slots, the latest
    first: Optional[datetime] = None  # the earliest slot a record covers
    count: int = 1  # how many slots a record covers
    reason: str = ""
    catch_up: bool = False  # a run standing for slots missed while no scheduler ran
    queued: bool = False  # a run that waited for another to end (overlap = "queue")

    def record(self, now: datetime) -> dict:
        """The journal body of a skipped or missed slot (docs/schedules.md)."""
        body: dict = {"event": self.kind, "schedule": self.schedule, "slot": self.slot.isoformat(),
                      "time": now.timestamp(), "count": self.count, "reason": self.reason}
        if self.first is not None and self.count > 1:
            body["first"] = self.first.isoformat()
        return body

    def trigger(self) -> dict:
        """What a run's record says started it."""
        out: dict = {"schedule": self.schedule, "slot": self.slot.isoformat()}
        if self.catch_up:
            out["catch_up"] = True
        if self.queued:
            out["queued"] = True
        return out


class Timetable:
    """The schedules' cursors; `due(now)` hands out what came due and moves them to now."""

    def __init__(self, schedules: Mapping[str, ScheduleSpec], cursors: Mapping[str, datetime]) -> None:
        self.specs = dict(schedules)
        self.crons = {name: Cron(spec.cron, spec.timezone) for name, spec in schedules.items()}
        self.cursors = dict(cursors)

    def replace(self, schedules: Mapping[str, ScheduleSpec], now: datetime) -> None:
        """New schedules (the Flowfile was edited): a kept one keeps its cursor, a new one starts at `now`."""
        self.specs = dict(schedules)
        self.crons = {name: Cron(spec.cron, spec.timezone) for name, spec in schedules.items()}
        self.cursors = {name: self.cursors.get(name, now) for name in schedules}

    def due(self, now: datetime) -> List[Due]:
        found: List[Due] = []
        for name, cron in self.crons.items():
            slots = cron.fires_between(self.cursors[name], now)
            self.cursors[name] = max(self.cursors[name], now)
            if slots:
                found.append(Due(name, slots[-1], tuple(slots[:-1])))
        order = list(self.crons)
        found.sort(key=lambda d: (d.slot, order.index(d.schedule)))
        return found

    def next_wake(self) -> Optional[datetime]:
        """The earliest slot after every cursor (None without schedules)."""
        upcoming = [cron.next_fires(self.cursors[name], 1) for name, cron in self.crons.items()]
        times = [fires[0] for fires in upcoming if fires]
        return min(times, key=lambda t: t.timestamp()) if times else None


def parse_time(text: object) -> Optional[datetime]:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def cursors_from_history(schedules: Iterable[str], records: Sequence[Mapping[str, object]], *,
                         now: datetime) -> Dict[str, datetime]:
    """Each schedule's cursor after a restart (see the module's doc); `records`: State.schedule_records()."""
    lifecycle: Optional[datetime] = None
    last_slot: Dict[str, datetime] = {}
    for body in records:
        event = body.get("event")
        if event in ("started", "stopped"):
            when = body.get("time")
            if isinstance(when, (int, float)):
                moment = datetime.fromtimestamp(when, timezone.utc)
                lifecycle = moment if lifecycle is None else max(lifecycle, moment)
        elif isinstance(body.get("schedule"), str):
            slot = parse_time(body.get("slot"))
            name = str(body["schedule"])
            if slot is not None and (name not in last_slot or slot > last_slot[name]):
                last_slot[name] = slot
    out: Dict[str, datetime] = {}
    for name in schedules:
        known = [t for t in (lifecycle, last_slot.get(name)) if t is not None]
        # Never after now: a clock set back must not hide the slots to come.
        out[name] = min(max(known), now) if known else now
    return out


def decide(due: Sequence[Due], specs: Mapping[str, ScheduleSpec], *, busy: Optional[str] = None,
           downtime: bool = False, queued: Set[str] = frozenset()) -> List[Action]:  # type: ignore[assignment]
    """What to do about slots that came due.

    `downtime`: they came due while no scheduler ran (the first pass after a
    start): the latest runs once if the schedule has `catch_up`, the rest are
    missed. `busy`: they came due while that run was in progress: by the
    schedule's `overlap`, skipped, or queued (once per schedule: `queued`
    names those already waiting). Otherwise the latest runs now and any
    earlier ones (a scheduler that woke late: a suspended machine) are missed.
    """
    actions: List[Action] = []
    for d in due:
        spec = specs[d.schedule]
        every = d.earlier + (d.slot,)
        if downtime:
            if spec.catch_up:
                actions.append(Action("run", d.schedule, d.slot, catch_up=True))
                if d.earlier:
                    actions.append(_covering("missed", d.schedule, d.earlier,
                                             f"no scheduler was running; caught up once by slot {d.slot.isoformat()}"))
            else:
                actions.append(_covering("missed", d.schedule, every,
                                         "no scheduler was running (catch_up = false)"))
        elif busy is not None:
            if spec.overlap == "queue" and d.schedule not in queued:
                actions.append(Action("run", d.schedule, d.slot, queued=True))
                if d.earlier:
                    actions.append(_covering("skipped", d.schedule, d.earlier,
                                             f"run {busy} was in progress; the schedule runs once when it ends"))
            else:
                why = (f"run {busy} was in progress (overlap = \"skip\")" if spec.overlap == "skip"
                       else f"run {busy} was in progress and this schedule already has a run queued")
                actions.append(_covering("skipped", d.schedule, every, why))
        else:
            actions.append(Action("run", d.schedule, d.slot))
            if d.earlier:
                actions.append(_covering("missed", d.schedule, d.earlier,
                                         "the scheduler woke late (a suspended machine, a stopped process)"))
    return actions


def _covering(kind: str, schedule: str, slots: Sequence[datetime], reason: str) -> Action:
    return Action(kind, schedule, slots[-1], first=slots[0], count=len(slots), reason=reason)


def latest_slot(spec: ScheduleSpec, now: datetime) -> Optional[datetime]:
    """The schedule's last fire time at or before `now`: the slot `schedule fire` stands for."""
    return Cron(spec.cron, spec.timezone).last_fire(now)
