"""Cron expressions in a time zone: the value language of `[schedules.NAME] cron`.

Five fields (minute, hour, day of month, month, day of week) as in crontab(5),
plus the @hourly/@daily/@weekly/@monthly/@yearly shorthands. Evaluation is
cronsim's, chosen over croniter because it follows Debian cron across a
daylight-saving change: a job at a fixed time in the hour that is skipped
(spring forward) runs at the first minute after it, and one in the hour that
repeats (fall back) runs once, where croniter fires a 02:30 nightly job twice;
and because it is a single pure-Python file with no dependencies. Time zones
are zoneinfo's (the system's tz database, else the `tzdata` package).

Nothing here reads the Flowfile or the clock: every function takes the
moment it works from, so tests drive it with any time they like.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator, List, NamedTuple, Optional, Tuple

ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
CRON_HINT = ('write five fields, minute hour day-of-month month day-of-week, e.g. "0 5 * * *" (05:00 every day) '
             'or "*/15 * * * 1-5" (every 15 minutes on weekdays); or @hourly, @daily, @weekly, @monthly')


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; `hint` says what to write."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Cron(NamedTuple):
    """A checked expression (aliases expanded) and its time zone's name."""

    expr: str
    zone: str = "UTC"

    def tzinfo(self):  # type: ignore[no-untyped-def]
        return zone_info(self.zone)

    def fires_after(self, moment: datetime) -> Iterator[datetime]:
        """Fire times strictly after `moment` (aware), in the schedule's time zone, in order."""
        from cronsim import CronSim

        local = moment.astimezone(self.tzinfo())
        # CronSim starts at the next whole minute after `local` when it has seconds; at
        # `local` itself when it is on a minute, so step past a fire time that is `moment`.
        for fire in CronSim(self.expr, local.replace(microsecond=0)):
            if fire > moment:
                yield fire

    def next_fires(self, moment: datetime, count: int) -> List[datetime]:
        found: List[datetime] = []
        for fire in self.fires_after(moment):
            found.append(fire)
            if len(found) == count:
                break
        return found

    def fires_between(self, start: datetime, end: datetime, *, limit: int = 100_000) -> List[datetime]:
        """Fire times in (start, end], at most `limit` of them (the last ones are kept)."""
        found: List[datetime] = []
        for fire in self.fires_after(start):
            if fire > end:
                break
            found.append(fire)
            if len(found) > limit:
                del found[0]
        return found

    def last_fire(self, moment: datetime) -> Optional[datetime]:
        """The latest fire time at or before `moment`, None if there is none."""
        from cronsim import CronSim

        local = moment.astimezone(self.tzinfo())
        start = local.replace(second=0, microsecond=0)
        for fire in CronSim(self.expr, start + timedelta(minutes=1), reverse=True):
            if fire <= moment:
                return fire
        return None

    def explain(self) -> str:
        from cronsim import CronSim

        try:
            return CronSim(self.expr, datetime.now(timezone.utc)).explain()
        except Exception:  # the wording is a courtesy: never let it break a listing
            return self.expr


def zone_info(name: str):  # type: ignore[no-untyped-def]
    """The zoneinfo time zone `name`; CronError naming the close ones if there is none."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    if name.upper() == "UTC":
        return timezone.utc
    try:
        if "\\" in name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        known = available_timezones()
        if not known:
            raise CronError(f"unknown time zone `{name}`: this machine has no time zone database",
                            "install one: `pip install tzdata`, or your system's tzdata package") from None
        from ..errors import did_you_mean

        hint = did_you_mean(name, sorted(known))
        raise CronError(f"unknown time zone `{name}`",
                        hint or 'use an IANA name such as "Europe/Berlin", "America/New_York" or "UTC"') from None


def parse_cron(expr: str, zone: str = "UTC") -> Cron:
    """The checked `Cron`; CronError with the field that is wrong and how to write it."""
    from cronsim import CronSim, CronSimError

    text = " ".join(expr.split())
    text = ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise CronError(f"unknown cron shorthand `{text}`", "use one of " + ", ".join(sorted(ALIASES)))
    parts = text.split(" ")
    if len(parts) != 5:
        raise CronError(f"cron expression `{expr}` has {len(parts)} field{'s' if len(parts) != 1 else ''}, "
                        "not 5" + (" (a seconds field is not supported)" if len(parts) == 6 else ""), CRON_HINT)
    tz = zone_info(zone)
    for i, part in enumerate(parts):
        probe = ["*"] * 5
        probe[i] = part
        try:
            CronSim(" ".join(probe), datetime(2000, 1, 1, tzinfo=timezone.utc))
        except (CronSimError, ValueError, IndexError, KeyError):
            raise CronError(f"cron expression `{expr}`: bad {FIELDS[i]} field `{part}`", _field_hint(i)) from None
    try:
        sim = CronSim(text, datetime(2000, 1, 1, tzinfo=tz))
        next(sim)  # a day that never comes (30 2 *: "Bad day-of-month") is found here or above
    except (CronSimError, ValueError, IndexError, KeyError, StopIteration):
        raise CronError(f"cron expression `{expr}` never fires: no month it names has that day of the month",
                        "pick a day every month it names has (1-28 fits every month)") from None
    return Cron(text, "UTC" if zone.upper() == "UTC" else zone)


_RANGES = ("0-59", "0-23", "1-31", "1-12 or jan-dec", "0-7 or sun-sat (0 and 7 are Sunday)")


def _field_hint(i: int) -> str:
    return (f"the {FIELDS[i]} field takes {_RANGES[i]}, as a value, a list (1,15), a range (1-5), "
            f"a step (*/10, 0-30/5) or *; fields are: {' '.join(f.replace(' ', '-') for f in FIELDS)}")


def field_values(cron: Cron) -> Tuple[Optional[List[int]], ...]:
    """Each field's values, sorted (None for `*`), for export to other schedulers.

    Day of week is 0-6 from Sunday. A Quartz extension (L, W, #) raises CronError: crontab and
    systemd cannot say it.
    """
    from cronsim import CronSim

    sim = CronSim(cron.expr, datetime(2000, 1, 1, tzinfo=timezone.utc))
    values = [sim.minutes, sim.hours, sim.days, sim.months, sim.weekdays]
    out: List[Optional[List[int]]] = []
    for part, found in zip(cron.expr.split(" "), values):
        if any(not isinstance(v, int) or v < 0 for v in found):
            raise CronError(f"cron expression `{cron.expr}` uses `{part}`, which crontab and systemd cannot express",
                            "keep to values, lists, ranges and steps, or run it with `flowmake schedule run`")
        out.append(None if part == "*" else sorted({v % 7 if found is sim.weekdays else v for v in found}))
    return tuple(out)


def days_are_either(cron: Cron) -> bool:
    """Whether a day matches when day of month OR day of week does (both restricted, as in cron)."""
    parts = cron.expr.split(" ")
    return not (parts[2].startswith("*") or parts[4].startswith("*"))
