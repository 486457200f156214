"""`flowmake schedule export`: the schedules as crontab lines or systemd timer and service units.

For users who prefer their system's scheduler. Each entry runs `flowmake
schedule fire NAME`, which records the schedule and slot in the journal as
the foreground scheduler does, and handles overlap through the project's
lock: with `overlap = "skip"` a slot that finds another run in progress is
recorded as skipped, with `"queue"` it waits for that run. The entries use
absolute paths (cron's PATH is minimal), the caller's PATH for the tasks,
and log somewhere durable: a file under `.flowmake/` for cron, the journal
(journalctl) for systemd. `catch_up` is systemd's `Persistent=true`; cron
cannot catch up, and the crontab says so.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from typing import List, Mapping, Optional, Sequence, Tuple

from ..load.cron import Cron, days_are_either, field_values
from ..model import Flowfile, ScheduleSpec

DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def flowmake_command() -> List[str]:
    """How to start this flowmake from anywhere: the console script's absolute path, else python -m."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(script) == "flowmake" and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "flowmake"]


def _fire(name: str) -> List[str]:
    return [*flowmake_command(), "schedule", "fire", name, "--progress", "plain"]


def unit_prefix(flowfile: Flowfile) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", flowfile.name).strip("-") or "project"
    return f"flowmake-{slug}"


def crontab(flowfile: Flowfile, schedules: Mapping[str, ScheduleSpec]) -> str:
    root = str(flowfile.root)
    lines = [
        f"# flowmake schedules of {flowfile.name} ({root}), from `flowmake schedule export --format crontab`.",
        "# Install: `crontab -l > mine; cat this >> mine; crontab mine`. Each slot runs `flowmake schedule fire`,",
        "# which records the schedule and slot in the journal and honours `overlap` through the project's lock.",
        "# The tasks get this PATH (cron's own is /usr/bin:/bin):",
        f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}",
    ]
    for name, spec in schedules.items():
        cron = Cron(spec.cron, spec.timezone)
        field_values(cron)  # a Quartz extension (L, #) is refused here, with its reason
        log = f".flowmake/schedule-{name}.log"
        command = f"cd {shlex.quote(root)} && mkdir -p .flowmake && {shlex.join(_fire(name))} >> {log} 2>&1"
        lines += [
            "",
            f"# {name}: {cron.explain()} ({spec.timezone}); targets: {' '.join(spec.targets) or '(default)'};"
            f" overlap = {spec.overlap}; log: {root}/{log}",
        ]
        if spec.catch_up:
            lines.append("# catch_up = true: cron does not run missed slots; use the systemd export "
                         "(Persistent=true) or `flowmake schedule run` for that")
        lines.append("# CRON_TZ is honoured by cronie (Fedora, RHEL, Arch) and busybox; Debian's cron uses the "
                     "system's time zone")
        lines.append(f"CRON_TZ={spec.timezone}")
        lines.append(f"{cron.expr} {command.replace('%', chr(92) + '%')}")  # % is a newline to cron
    return "\n".join(lines) + "\n"


def on_calendar(cron: Cron) -> List[str]:
    """systemd OnCalendar= values that fire when the cron expression does (two when its days are OR'ed)."""
    minute, hour, dom, month, dow = field_values(cron)
    zone = cron.zone

    def join(values: Optional[Sequence[int]], width: int = 2) -> str:
        return "*" if values is None else ",".join(f"{v:0{width}d}" for v in values)

    clock = f"{join(hour)}:{join(minute)}:00"
    days = "" if dow is None else ",".join(DAY_NAMES[d] for d in dow) + " "
    if days_are_either(cron):  # cron fires when either day field matches: systemd ANDs them, so two lines
        return [f"*-{join(month)}-{join(dom)} {clock} {zone}", f"{days}*-{join(month)}-* {clock} {zone}"]
    return [f"{days}*-{join(month)}-{join(dom)} {clock} {zone}"]


def systemd_units(flowfile: Flowfile, schedules: Mapping[str, ScheduleSpec]) -> List[Tuple[str, str]]:
    """(file name, text) of a .service and a .timer per schedule."""
    prefix = unit_prefix(flowfile)
    root = str(flowfile.root)
    out: List[Tuple[str, str]] = []
    for name, spec in schedules.items():
        cron = Cron(spec.cron, spec.timezone)
        unit = f"{prefix}-{name}"
        what = f"flowmake schedule {name} of {flowfile.name} ({root})"
        service = "\n".join([
            "[Unit]",
            f"Description={what}",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={root}",
            f"Environment=PATH={os.environ.get('PATH', '/usr/bin:/bin')}",
            f"ExecStart={' '.join(_systemd_quote(w) for w in _fire(name))}",
            "# systemd's stop sends SIGTERM: the run stops its tasks as Ctrl-C would and is recorded interrupted.",
            "TimeoutStopSec=90",
            "",
        ])
        timer = "\n".join([
            "[Unit]",
            f"Description=Timer for {what}: {cron.explain()} ({spec.timezone})",
            "",
            "[Timer]",
            *(f"OnCalendar={value}" for value in on_calendar(cron)),
            f"Persistent={'true' if spec.catch_up else 'false'}",
            f"Unit={unit}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ])
        out += [(f"{unit}.service", service), (f"{unit}.timer", timer)]
    return out


def _systemd_quote(word: str) -> str:
    # systemd splits ExecStart= like a shell without expansion; % starts a specifier.
    word = word.replace("%", "%%")
    return word if re.fullmatch(r"[A-Za-z0-9_./:=@+-]+", word) else '"' + word.replace('"', '\\"') + '"'
