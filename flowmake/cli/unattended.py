"""The `schedule` commands and `watch`, wired: what app.py's thin commands call.

The scheduler and the watcher (flowmake/unattended/) take the function that
runs targets; here it is the same `run_build` as `flowmake run`, on the
Flowfile loaded afresh for each run, so an edit between runs is picked up.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, TextIO

from ..errors import EXIT_LOCKED, FlowError, LockHeldError, UsageError, did_you_mean
from ..model import ScheduleSpec
from .commands import Project, run_build


def _say(line: str) -> None:
    print(line, flush=True)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class ScheduledRuns:
    """Runs a schedule's targets as `flowmake run TARGETS` would, recording what started it."""

    def __init__(self, path: Path, *, progress: str, argv: Sequence[str]) -> None:
        self.path = path  # the Flowfile: -C was entered once, before
        self.progress = progress
        self.argv = tuple(argv)

    def __call__(self, spec: ScheduleSpec, trigger: Mapping[str, object], wait: bool):  # type: ignore[no-untyped-def]
        from ..unattended.journal import run_started_by
        from ..unattended.scheduler import Outcome

        try:
            project = Project.load(file=self.path, directory=None)
            code = run_build(project, list(spec.targets), jobs=None, dry_run=False, keep_going=False,
                             always_make=False, force=(), progress=self.progress, wait=wait, quiet=False,
                             verbose=False, argv=self.argv, trigger=trigger)
        except LockHeldError as exc:
            return Outcome(EXIT_LOCKED, locked=exc.message)
        except FlowError as exc:  # the Flowfile was broken since, or a target is gone
            sys.stdout.flush()
            print(exc.render(), file=sys.stderr, flush=True)
            return Outcome(exc.exit_code)
        return Outcome(code, run_started_by(project.root, trigger, warn=_warn))


def _progress(asked: str) -> str:
    return ("tree" if sys.stdout.isatty() else "plain") if asked == "auto" else asked


def list_schedules(project: Project, *, as_json: bool, start: Optional[str], out: TextIO = sys.stdout) -> int:
    from ..unattended import listing
    from ..unattended.journal import last_runs

    items = listing.rows(project.flowfile.schedules, last_runs(project.root, warn=_warn),
                         start=listing.parse_from(start), now=datetime.now(timezone.utc))
    listing.write(items, as_json=as_json, out=out)
    return 0


def _chosen(project: Project, names: Sequence[str]) -> Mapping[str, ScheduleSpec]:
    schedules = project.flowfile.schedules
    if not schedules:
        raise UsageError(f"{project.flowfile.path.name} has no schedules", file=project.flowfile.path,
                         hint='add one: [schedules.nightly] cron = "0 5 * * *" targets = ["package"] '
                              "(docs/schedules.md)")
    for name in names:
        if name not in schedules:
            raise UsageError(f"unknown schedule `{name}`", file=project.flowfile.path,
                             hint=did_you_mean(name, schedules) or f"schedules: {', '.join(schedules)}")
    return {n: s for n, s in schedules.items() if not names or n in names}


def run_scheduler(project: Project, names: Sequence[str], *, progress: str, argv: Sequence[str]) -> int:
    from ..unattended.journal import ProjectJournal
    from ..unattended.scheduler import Scheduler, WallClock

    chosen = _chosen(project, names)
    path = project.flowfile.path
    reported: List[str] = []

    def reload() -> Optional[Mapping[str, ScheduleSpec]]:
        """The schedules as the Flowfile says now; None (keep the old ones) while it does not load."""
        try:
            schedules = Project.load(file=path, directory=None).flowfile.schedules
        except FlowError as exc:
            if exc.render() not in reported:  # once per distinct mistake, not every minute
                reported.append(exc.render())
                _warn(f"the Flowfile does not load; keeping the schedules as they were:\n{exc.render()}")
            return None
        reported.clear()
        return {n: s for n, s in schedules.items() if not names or n in names}

    scheduler = Scheduler(chosen, clock=WallClock(), run=ScheduledRuns(path, progress=_progress(progress), argv=argv),
                          journal=ProjectJournal(project.root, warn=_warn), say=_say, reload=reload)
    return scheduler.serve()


def fire_schedule(project: Project, name: str, *, progress: str, argv: Sequence[str]) -> int:
    """One slot of one schedule, now: what an exported crontab line or systemd timer starts."""
    from ..unattended.journal import ProjectJournal
    from ..unattended.timetable import Action, latest_slot

    spec = _chosen(project, [name])[name]
    now = datetime.now(timezone.utc)
    slot = latest_slot(spec, now) or now
    late = (now - slot).total_seconds()
    if late > 90:
        _warn(f"schedule {name}: started {late / 60:.0f} min after its slot {slot.isoformat()}: if cron started "
              f"it, check that your cron honours CRON_TZ={spec.timezone} (Debian's does not)")
    action = Action("run", name, slot)
    trigger = dict(action.trigger(), via="fire")
    outcome = ScheduledRuns(project.flowfile.path, progress=_progress(progress), argv=argv)(
        spec, trigger, spec.overlap == "queue")
    if outcome.locked is None:
        return outcome.code
    journal = ProjectJournal(project.root, warn=_warn)
    journal.write(action._replace(kind="skipped", reason=f"{outcome.locked} (overlap = \"skip\")").record(now))
    _say(f"schedule: {name}: skipped slot {slot.isoformat()}: {outcome.locked}; recorded when that run ends")
    journal.flush(wait=True)
    return 0


def export_schedules(project: Project, names: Sequence[str], *, fmt: str, output: Optional[Path],
                     out: TextIO = sys.stdout) -> int:
    from ..unattended.export import crontab, systemd_units

    chosen = _chosen(project, names)
    if fmt == "crontab":
        text = crontab(project.flowfile, chosen)
        if output is None:
            out.write(text)
        else:
            output.write_text(text)
            _say(f"wrote {output}")
        return 0
    units = systemd_units(project.flowfile, chosen)
    if output is None:
        for file_name, text in units:
            out.write(f"# ---- {file_name} ----\n{text}\n")
        return 0
    output.mkdir(parents=True, exist_ok=True)
    written: List[str] = []
    for file_name, text in units:
        (output / file_name).write_text(text)
        written.append(file_name)
    _say(f"wrote {len(written)} units to {output}: {' '.join(written)}")
    return 0


def run_watch(path: Path, root: Path, targets: Sequence[str], *, progress: str, debounce_ms: int,
              argv: Sequence[str]) -> int:
    """`flowmake watch`: the Flowfile at `path` is loaded afresh before every run."""
    import signal
    import time

    try:
        import watchfiles  # noqa: F401  (the optional dependency, checked before anything runs)
    except ImportError:
        raise UsageError("`flowmake watch` needs the watchfiles package",
                         hint="install it with `pip install 'flowmake[watch]'`") from None
    from ..engine.graph import closure
    from ..unattended.watch import Changes, flowfile_only, watch_loop, watch_set

    shown = _progress(progress)
    stop: List[str] = []

    def load():  # type: ignore[no-untyped-def]
        try:
            project = Project.load(file=path, directory=None)
            selection = closure(project.graph, project.targets(targets))
        except FlowError as exc:
            error = exc

            def refuse() -> int:
                sys.stdout.flush()
                print(error.render(), file=sys.stderr, flush=True)
                return error.exit_code

            return flowfile_only(str(path), str(root)), refuse

        def run() -> int:
            try:
                return run_build(project, list(targets), jobs=None, dry_run=False, keep_going=False,
                                 always_make=False, force=(), progress=shown, wait=False, quiet=False,
                                 verbose=False, argv=argv)
            except FlowError as exc:  # another run holds the project: wait for the next change
                sys.stdout.flush()
                print(exc.render(), file=sys.stderr, flush=True)
                return exc.exit_code

        return watch_set(project.flowfile, project.graph, selection), run

    changes = Changes(str(root), debounce_ms=debounce_ms)
    handled = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.getsignal(s) for s in handled}
    for s in handled:
        signal.signal(s, lambda signum, _f: stop.append(signal.Signals(signum).name))
    changes.start()
    try:
        return watch_loop(load=load, changes=changes, say=_say, clock=time.monotonic, stopped=lambda: bool(stop))
    except KeyboardInterrupt:  # Ctrl-C between runs
        _say("watch: stopped")
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        changes.close()
