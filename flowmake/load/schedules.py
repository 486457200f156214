"""`[schedules.NAME]` tables: when a project's targets run unattended.

Each table is checked on its own (keys, types, the cron expression and time
zone through `cron`, the overlap policy) and its targets against the tasks
and outputs the Flowfile declares, so that `flowmake check` and every
command report a schedule that could never run, with its line and a hint,
before any scheduler relies on it.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

from ..errors import did_you_mean
from ..model import OVERLAP_POLICIES, ScheduleSpec
from .cron import CronError, parse_cron
from .problems import Problems, check_keys, describe, is_str_list, toml_type
from .producers import Producers, TaskNames
from .templates import IDENT_RE

SCHEDULE_KEYS = ("cron", "targets", "timezone", "overlap", "catch_up")
EXAMPLE = '[schedules.nightly]\ncron = "0 5 * * *"\ntargets = ["package"]'


def read_schedules(raw: object, *, names: TaskNames, producers: Producers,
                   problems: Problems) -> Mapping[str, ScheduleSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(f"`schedules` must be a table of schedules, got {toml_type(raw)}", at=("schedules",),
                     hint="write one table per schedule: " + EXAMPLE.replace("\n", "; "))
        return {}
    out: Dict[str, ScheduleSpec] = {}
    for name, table in raw.items():
        spec = _read_one(name, table, names=names, producers=producers, problems=problems)
        if spec is not None:
            out[name] = spec
    return out


def _read_one(name: str, table: object, *, names: TaskNames, producers: Producers,
              problems: Problems) -> Optional[ScheduleSpec]:
    at = ("schedules", name)
    label = f"schedule `{name}`: "
    if not IDENT_RE.fullmatch(name.replace("-", "_")):
        problems.add(f"schedule name `{name}` must be letters, digits, '_' and '-', starting with a letter",
                     at=at, hint="rename the table, e.g. [schedules.nightly]")
        return None
    if not isinstance(table, dict):
        problems.add(f"{label}must be a table, got {toml_type(table)}", at=at, hint=EXAMPLE.replace("\n", "; "))
        return None
    check_keys(table, SCHEDULE_KEYS, problems=problems, at=at, label=label)
    ok = True
    zone = table.get("timezone", "UTC")
    if not isinstance(zone, str):
        problems.add(f"{label}`timezone` must be a string, got {toml_type(zone)}", at=at + ("timezone",),
                     hint='write timezone = "Europe/Berlin" (default: UTC)')
        zone, ok = "UTC", False
    expr = table.get("cron")
    cron = None
    if expr is None:
        problems.add(f"{label}needs `cron`, a five-field cron expression", at=at,
                     hint='add cron = "0 5 * * *" (05:00 every day)')
        ok = False
    elif not isinstance(expr, str):
        problems.add(f"{label}`cron` must be a string, got {toml_type(expr)}", at=at + ("cron",),
                     hint='quote it: cron = "0 5 * * *"')
        ok = False
    else:
        try:
            cron = parse_cron(expr, zone)
        except CronError as exc:
            key = "timezone" if exc.message.startswith("unknown time zone") else "cron"
            problems.add(f"{label}{exc.message}", at=at + (key,), hint=exc.hint)
            ok = False
    targets = table.get("targets", [])
    if isinstance(targets, str):
        targets = [targets]
    if not is_str_list(targets):
        problems.add(f"{label}`targets` must be a list of task names, got {describe(targets)}", at=at + ("targets",),
                     hint='write targets = ["package"] (default: the [flow] default targets)')
        targets, ok = [], False
    for target in targets:
        if names.resolve(target) is None and not producers.produces(target):
            problems.add(f"{label}target `{target}` is not a task, a variant or a declared output",
                         at=at + ("targets",),
                         hint=did_you_mean(target, names.choices()) or "`flowmake list` shows the tasks")
            ok = False
    overlap = table.get("overlap", "skip")
    if overlap not in OVERLAP_POLICIES:
        got = f"`{overlap}`" if isinstance(overlap, str) else toml_type(overlap)
        problems.add(f"{label}unknown `overlap` value {got}", at=at + ("overlap",),
                     hint='write overlap = "skip" (a slot due during a run is skipped, and recorded) or '
                          'overlap = "queue" (it runs when that run ends)')
        ok = False
    catch_up = table.get("catch_up", False)
    if not isinstance(catch_up, bool):
        problems.add(f"{label}`catch_up` must be true or false, got {toml_type(catch_up)}", at=at + ("catch_up",),
                     hint="write catch_up = true (after downtime, run the latest missed slot once)")
        ok = False
    if not ok or cron is None:
        return None
    return ScheduleSpec(name=name, cron=cron.expr, targets=tuple(targets), timezone=cron.zone, overlap=overlap,
                        catch_up=catch_up, line=problems.line(at))
