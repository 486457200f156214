"""`flowmake schedule list`: each schedule, its next fire times and how its last slot went."""

from __future__ import annotations

import json
from datetime import datetime
from typing import List, Mapping, Optional, TextIO

from ..errors import UsageError
from ..load.cron import Cron, zone_info
from ..model import ScheduleSpec

COUNT = 5


def parse_from(text: Optional[str]) -> Optional[datetime]:
    """`--from`: an ISO 8601 time; without an offset it is read in each schedule's own time zone."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError(f"--from `{text}` is not an ISO 8601 time",
                         hint="write e.g. --from 2026-10-24T12:00 (in each schedule's time zone) or "
                              "--from 2026-10-24T12:00+02:00") from None


def rows(schedules: Mapping[str, ScheduleSpec], last: Mapping[str, dict], *,
         start: Optional[datetime], now: datetime) -> List[dict]:
    out = []
    for name, spec in schedules.items():
        cron = Cron(spec.cron, spec.timezone)
        moment = start or now
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=cron.tzinfo())
        out.append({
            "name": name, "cron": spec.cron, "timezone": spec.timezone, "explained": cron.explain(),
            "targets": list(spec.targets), "overlap": spec.overlap, "catch_up": spec.catch_up,
            "next": [t.isoformat() for t in cron.next_fires(moment - _tick(), COUNT)],
            "last": _last(last.get(name)),
        })
    return out


def _tick():  # type: ignore[no-untyped-def]
    from datetime import timedelta

    # --from names a moment that may itself be a slot: list it.
    return timedelta(microseconds=1)


def _last(body: Optional[dict]) -> Optional[dict]:
    if body is None:
        return None
    keep = ("event", "slot", "run_id", "result", "reason", "count", "catch_up", "queued")
    return {k: body[k] for k in keep if k in body}


def write(items: List[dict], *, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(items, indent=2) + "\n")
        return
    if not items:
        out.write("no schedules: add a [schedules.NAME] table with `cron` and `targets` (docs/schedules.md)\n")
        return
    for item in items:
        targets = " ".join(item["targets"]) or "(the default targets)"
        out.write(f"{item['name']}  {item['cron']}  {item['timezone']}  ({item['explained']})\n")
        out.write(f"  targets: {targets}  overlap: {item['overlap']}  catch_up: {str(item['catch_up']).lower()}\n")
        zone = zone_info(item["timezone"])
        out.write(f"  last: {_last_text(item['last'], zone)}\n")
        for i, fire in enumerate(item["next"]):
            out.write(("  next: " if i == 0 else "        ") + _shown(fire, zone) + "\n")


def _last_text(last: Optional[dict], zone) -> str:  # type: ignore[no-untyped-def]
    if last is None:
        return "never (no run of this schedule on record)"
    slot = _shown(last["slot"], zone) if "slot" in last else "?"
    if last.get("event") == "run":
        result = last.get("result") or "running or killed (no end on record)"
        return f"slot {slot}: run {last.get('run_id')}: {result}"
    many = f" ({last['count']} slots)" if last.get("count", 1) > 1 else ""
    return f"slot {slot}{many}: {last.get('event')}: {last.get('reason', '')}"


def _shown(iso: str, zone) -> str:  # type: ignore[no-untyped-def]
    moment = datetime.fromisoformat(iso).astimezone(zone)  # the zone's name (CEST), not only its offset
    offset = moment.isoformat()[19:] or "+00:00"
    return moment.strftime("%Y-%m-%d %a %H:%M ") + (moment.tzname() or "") + f" ({offset})"
