"""The unattended commands: watch, and schedule list|run|fire|export (wired in unattended.py)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .fastpath import PROGRESS_MODES
from .invocation import guarded, invocation, load_project
from .shorthand import HELP as SHORTHAND_HELP


@guarded
def watch(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks, matrix variants or output paths (default: as `run`)."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json, for each run"),
    debounce: int = typer.Option(1600, "--debounce", metavar="MS",
                                 help="Gather changes for up to this many milliseconds into one run."),
) -> int:
    """Run the targets, then again whenever one of their source files or the Flowfile changes; Ctrl-C stops."""
    if progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    if debounce < 0:
        raise UsageError(f"--debounce must be 0 or more milliseconds, got {debounce}")
    from .unattended import run_watch

    project = load_project()
    return run_watch(project.flowfile.path, project.root, targets or [], progress=progress, debounce_ms=debounce,
                     argv=invocation.typed)


schedule_app = typer.Typer(help="Unattended runs: the Flowfile's [schedules], run by flowmake or exported to cron or "
                                  "systemd (docs/schedules.md).", no_args_is_help=True, epilog=SHORTHAND_HELP)
EXPORT_TARGETS = ("crontab", "systemd")


@schedule_app.command("list", epilog=SHORTHAND_HELP)
@guarded
def schedule_list(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (docs/schedules.md)."),
    start: Optional[str] = typer.Option(None, "--from", metavar="TIME",
                                        help="Fire times after this ISO 8601 time (default: now; without an offset, "
                                             "in each schedule's time zone)."),
) -> int:
    """Each schedule with its next five fire times and how its last slot went."""
    from .unattended import list_schedules

    return list_schedules(load_project(), as_json=as_json, start=start)


@schedule_app.command("run", epilog=SHORTHAND_HELP)
@guarded
def schedule_run(
    names: Optional[List[str]] = typer.Argument(None, help="Only these schedules (default: all)."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json, for each run"),
) -> int:
    """Run each schedule's targets when due, in the foreground (for a systemd service or a container)."""
    if progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    from .unattended import run_scheduler

    return run_scheduler(load_project(), names or [], progress=progress, argv=invocation.typed)


@schedule_app.command("fire", epilog=SHORTHAND_HELP)
@guarded
def schedule_fire(
    name: str = typer.Argument(..., help="The schedule whose latest slot to run now."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json"),
) -> int:
    """Run one schedule's targets now, recorded as its latest slot (what exported cron and systemd entries call)."""
    if progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    from .unattended import fire_schedule

    return fire_schedule(load_project(), name, progress=progress, argv=invocation.typed)


@schedule_app.command("export", epilog=SHORTHAND_HELP)
@guarded
def schedule_export(
    names: Optional[List[str]] = typer.Argument(None, help="Only these schedules (default: all)."),
    fmt: str = typer.Option(..., "--format", help="crontab | systemd"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="crontab: write this file; systemd: write the units into this "
                                               "directory (default: print them)."),
) -> int:
    """Print ready-to-install crontab lines or systemd timer and service units for the schedules."""
    if fmt not in EXPORT_TARGETS:
        raise UsageError(f"unknown export format '{fmt}'", hint="use one of: " + ", ".join(EXPORT_TARGETS))
    from .unattended import export_schedules

    target = output if output is None else output.absolute()
    return export_schedules(load_project(), names or [], fmt=fmt, output=target)
