"""The no-op fast path, and the one parser of `flowmake run`'s options.

`parse` turns a `run` command line into `RunArgs`; the full path
(commands.run_parsed) takes those same RunArgs, and typer's `run` (app.py),
reached only for --help and malformed values, builds them and checks them
with `check`. The parser lives here because the no-op path needs it before
anything else is imported.

`flowmake run` on an unchanged project is the command users feel most, and
most of its cost would be start-up (typer, rich), TOML parsing and planning,
all to learn that nothing changed. When the arguments are ones this module
understands and a no-op snapshot (snapshot.py) proves by stat calls that the
previous all-fresh result still holds, it takes the project lock, records
the run in the audit journal, reports it through the ordinary reporters and
fires the hooks, exactly as the full path would. In every other case, and on
any doubt, it returns None and the full path runs.
"""

from __future__ import annotations

import os
import sys
import time
from itertools import repeat

from .. import __version__
from ..engine import prescan as prescans
from ..engine import snapshot as snapshots
from ..layout import STATE_DIR, nearest_flowfile
from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import List, Optional, Sequence, Tuple

    from ..store.state import State


PROGRESS_MODES = ("auto", "tree", "plain", "json")
OUTPUT_CHOICES = ("auto", "interleaved", "prefixed", "group", "none")  # model.OUTPUT_MODES and auto
CACHE_MODES = ("readwrite", "read", "write")  # cache.session.MODES


class RunArgs:
    """`flowmake run`'s options as given (`file`, `directory`: the global -f and -C)."""

    def __init__(self, *, file: Optional[str] = None, directory: Optional[str] = None,
                 targets: Sequence[str] = (), jobs: Optional[int] = None, quiet: bool = False,
                 verbose: bool = False, progress: str = "auto", output: Optional[str] = None, wait: bool = False,
                 dry_run: bool = False, keep_going: bool = False, always_make: bool = False,
                 force: Sequence[str] = (), argv: Sequence[str] = (), ci: str = "auto",
                 junit_xml: Optional[str] = None, executor: Optional[str] = None,
                 scheduler_address: Optional[str] = None, cache: Optional[str] = None,
                 cache_mode: str = "readwrite") -> None:
        self.file = file
        self.directory = directory
        self.targets: List[str] = list(targets)
        self.jobs = jobs
        self.quiet = quiet
        self.verbose = verbose
        self.progress = progress
        self.output = output
        self.wait = wait
        self.dry_run = dry_run
        self.keep_going = keep_going
        self.always_make = always_make
        self.force: List[str] = list(force)
        self.argv: Tuple[str, ...] = tuple(argv)  # as typed, for the run's record
        # CI output (cli/cioutput.py): left to typer's parsing, which checks them, and to the full path.
        self.ci = ci
        self.junit_xml = junit_xml
        # Where tasks run (executors/registry.py): typer's, as the fast path leaves runs that name one to it.
        self.executor = executor
        self.scheduler_address = scheduler_address
        # The shared cache (docs/cache.md): nothing to restore on a no-op, so only the full path opens it.
        self.cache = cache
        self.cache_mode = cache_mode


def check(args: RunArgs) -> None:
    """A value `parse` would not take is a usage error naming what is allowed (typer's `run` calls this)."""
    from ..errors import UsageError

    if args.progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{args.progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    if args.output is not None and args.output not in OUTPUT_CHOICES:
        raise UsageError(f"unknown --output mode '{args.output}'", hint="use one of: " + ", ".join(OUTPUT_CHOICES))
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j must be at least 1, got {args.jobs}")
    if args.cache_mode not in CACHE_MODES:
        raise UsageError(f"unknown --cache-mode '{args.cache_mode}'", hint="use one of: " + ", ".join(CACHE_MODES))


def progress_mode(asked: str) -> str:
    """The reporter a run uses: `auto` is the tree at a terminal, plain lines elsewhere."""
    if asked == "auto":
        return "tree" if sys.stdout.isatty() else "plain"
    return asked


def parse(argv: Sequence[str], *, typed: Optional[Sequence[str]] = None) -> Optional[RunArgs]:
    """`flowmake [-f F] [-C D] [run [opts] [targets]]`, when well-formed; None for
    anything else (other commands, --help, a bad value), which typer handles.

    `argv` as shorthand.expand made it; `typed`, as given, is what the run records.
    """
    args = RunArgs(argv=argv if typed is None else typed)
    items = list(argv)
    i = 0

    def value(flag: str) -> Optional[str]:
        nonlocal i
        item = items[i]
        if item.startswith(flag + "=") and flag.startswith("--"):
            return item[len(flag) + 1:]
        if i + 1 < len(items):
            i += 1
            return items[i]
        return None

    while i < len(items) and items[i] != "run":
        item = items[i]
        if item in ("-f", "--file") or item.startswith("--file="):
            args.file = value("--file")
        elif item in ("-C", "--directory") or item.startswith("--directory="):
            args.directory = value("--directory")
        else:
            return None
        if (args.file == "") or (args.directory == ""):
            return None
        i += 1
    i += 1  # "run", or past the end for a bare `flowmake`
    only_targets = False
    while i < len(items):
        item = items[i]
        if only_targets or not item.startswith("-") or item == "-":
            args.targets.append(item)
        elif item == "--":
            only_targets = True
        elif item in ("-j", "--jobs") or item.startswith("--jobs=") or (item.startswith("-j") and item[2:].isdigit()):
            text = item[2:] if item.startswith("-j") and item[2:].isdigit() else value("--jobs")
            if text is None or not text.isdigit() or int(text) < 1:
                return None
            args.jobs = int(text)
        elif item in ("-q", "--quiet"):
            args.quiet = True
        elif item in ("-v", "--verbose"):
            args.verbose = True
        elif item in ("-k", "--keep-going"):
            args.keep_going = True
        elif item in ("-n", "--dry-run"):
            args.dry_run = True
        elif item in ("-B", "--always-make"):
            args.always_make = True
        elif item == "--force" or item.startswith("--force="):
            name = value("--force")
            if not name:
                return None
            args.force.append(name)
        elif item == "--wait":
            args.wait = True
        elif item.split("=", 1)[0] in _CHOICE_OPTIONS:
            # --output and --cache-mode change nothing on a no-op; a value typer would refuse declines.
            flag = item.split("=", 1)[0]
            attr, choices = _CHOICE_OPTIONS[flag]
            chosen = value(flag)
            if chosen not in choices:
                return None
            setattr(args, attr, chosen)
        elif item == "--cache" or item.startswith("--cache="):
            args.cache = value("--cache")
            if not args.cache:
                return None
        else:
            return None
        i += 1
    return args


_CHOICE_OPTIONS = {"--progress": ("progress", PROGRESS_MODES), "--output": ("output", OUTPUT_CHOICES),
                   "--cache-mode": ("cache_mode", CACHE_MODES)}


def _cache_url_to_check(url: str) -> bool:
    """A cache URL other than a directory: a no-op need not open it, but its scheme must still be checked."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme != "file"


def _find_flowfile(args: RunArgs) -> Optional[str]:
    if args.file is not None:
        path = os.path.abspath(args.file)
        return path if os.path.isfile(path) else None
    return nearest_flowfile(os.getcwd())


def try_noop(argv: Sequence[str], *, hand_over: Optional[List[prescans.Prescan]] = None,
             typed: Optional[Sequence[str]] = None, process_ends: bool = False) -> Optional[int]:
    """Exit code of a proven no-op run, or None to take the full path.

    With `hand_over`, a decline because files changed (or are suspects)
    leaves there the scan of them it started for the full path (snapshot.Prescan).
    `process_ends`: the process ends when the command does (State.close).
    """
    cwd = os.getcwd()
    code = _try_noop(argv, hand_over, typed, process_ends)
    if code is None:
        os.chdir(cwd)  # the full path applies -C itself
    return code


def _try_noop(argv: Sequence[str], hand_over: Optional[List[prescans.Prescan]],
              typed: Optional[Sequence[str]], process_ends: bool) -> Optional[int]:
    args = parse(argv, typed=typed)
    if args is None or args.dry_run or args.always_make or args.force or snapshots.shortcuts_off():
        return None
    if os.environ.get("GITHUB_ACTIONS") == "true" or os.environ.get("GITLAB_CI"):
        return None  # CI output (groups, the step summary: cli/cioutput.py) is the full path's
    if _cache_url_to_check(args.cache or os.environ.get("FLOWMAKE_CACHE") or ""):
        return None  # the full path says when its scheme is unknown or its extra missing (exit 2)
    mode = progress_mode(args.progress)
    if args.directory is not None:
        try:
            os.chdir(args.directory)
        except OSError:
            return None
    flowfile = _find_flowfile(args)
    if flowfile is None:
        return None
    root = os.path.dirname(flowfile)
    state_dir = os.path.join(root, STATE_DIR)
    code = _ask_daemon(state_dir, argv, typed, flowfile)
    if code is not None:
        return code
    if snapshots.stat_key(snapshots.path_in(state_dir)) is None:
        return None  # nothing proven: not even worth the lock
    from ..errors import LockHeldError
    from ..store.lock import ProjectLock

    lock = ProjectLock(os.path.join(state_dir, "lock"))
    try:
        lock.acquire(wait=args.wait)
    except LockHeldError:
        return None  # the full path says who holds it, and exits 3
    # Checked under the lock: no run of ours is writing the snapshot or these
    # files now. With a big snapshot and two CPUs a forked child reads it and
    # stats its files while this process reads it too and gets the run ready;
    # the child holds the lock's file open, which no matter: release() unlocks
    # it for every holder.
    stamp = snapshots.stat_key(snapshots.path_in(state_dir))  # see Prescan.snapshot_if_current
    scan = None
    if stamp is not None and stamp[0] >= prescans.SCAN_MIN_BYTES and prescans.cpus() >= 2:
        scan = prescans.start_scan(state_dir, root, stamp)
    try:
        snap = snapshots.read(state_dir)
        if (snap is None
                or not snapshots.applies(snap, version=__version__, flowfile=flowfile, targets=args.targets,
                                         environ=os.environ)
                or tuple(snap.flowfile_stat) != snapshots.stat_key(flowfile)
                or (snap.includes and not snapshots.includes_unchanged(snap))):
            return None
        if scan is not None:
            scan.scanning(snap.files)
        run = None if snap.suspects else _NoopRun.prepare(snap, args, mode, root, process_ends)
        # A suspect's content cannot be vouched for by its stat.
        if run is not None and _unchanged(snap, root, scan):
            if scan is not None:
                scan.stop()  # done: and waited for once the run is reported
            try:
                return run.report()
            finally:
                if scan is not None:
                    scan.close()
        if run is not None:
            run.close()
        lock.release()
        if scan is None and (run is not None or snap.suspects):
            scan = prescans.start_prescan(snap.files, root)  # the full path needs every changed file
        _hand_over(scan, snap, stamp, hand_over)
        scan = None
        return None
    finally:
        lock.release()
        if scan is not None:
            scan.close()


def _ask_daemon(state_dir: str, argv: Sequence[str], typed: Optional[Sequence[str]], flowfile: str) -> Optional[int]:
    """The resident watcher's answer (docs/daemon.md) when one runs here; one stat of its socket when none does."""
    try:
        os.stat(os.path.join(state_dir, "daemon.sock"))  # daemon/client.py SOCKET_NAME
    except OSError:
        return None
    from ..daemon.client import ask_run

    return ask_run(os.path.join(state_dir, "daemon.sock"), argv, argv if typed is None else typed, flowfile)


def _unchanged(snap: snapshots.Snapshot, root: str, scan: Optional[prescans.Prescan]) -> bool:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return scan.unchanged(root_fd) if scan is not None else snapshots.files_unchanged(snap.files, root_fd)
    finally:
        os.close(root_fd)


def _hand_over(prescan: Optional[prescans.Prescan], snap: snapshots.Snapshot,
               stamp: Optional[Tuple[int, int, int, int]], hand_over: Optional[List[prescans.Prescan]]) -> None:
    if prescan is None:
        return
    if hand_over is None:
        prescan.close()
        return
    prescan.snapshot, prescan.stamp = snap, stamp
    hand_over.append(prescan)


_plans: list = [None, (), ()]  # the snapshot's tasks (itself, not a copy), their names, their PlannedTasks


class _NoopRun:
    """A no-op run made ready while the files are still being stat'ed: nothing shown or recorded until `report`."""

    @classmethod
    def prepare(cls, snap: "snapshots.Snapshot", args: RunArgs, mode: str, root: str,
                process_ends: bool) -> Optional["_NoopRun"]:
        """The run, or None when the state database is not one a no-op can record in."""
        from ..errors import StateDamagedError
        from ..store.state import State, StateError, keep_open_until_exit

        if process_ends:
            keep_open_until_exit()
        try:
            state = State.open_existing(root)
        except StateError:
            return None  # missing or damaged: the full path sets it aside and says so
        try:
            if state.identity != snap.state_identity:
                return None  # the database was started over since: its records are not the ones proven
            try:
                if state.unfinished_runs():
                    return None  # a killed run left tasks behind: the full path ends them
            except StateDamagedError:
                return None  # as a damaged file at opening: the full path sets it aside and says so
            run, state = cls(snap, args, mode, root, state), None
            return run
        finally:
            if state is not None:
                state.close(last=True)

    def __init__(self, snap: "snapshots.Snapshot", args: RunArgs, mode: str, root: str, state: "State") -> None:
        from ..engine.plan import PROVEN, decide
        from ..engine.recorder import Recorder
        from ..events import PlannedTask, RunStarted
        from ..model import Hooks, RunRecord
        from ..report import make_reporter
        from ..store.identity import current_user, host_name, new_run_id

        self.snap, self.args, self.state = snap, args, state
        self.run_id = run_id = new_run_id()
        started = time.time()
        self.t0 = time.monotonic()
        jobs = args.jobs or snap.jobs or os.cpu_count() or 1
        # No task has secrets here: such Flowfiles never get a snapshot.
        self.recorder = Recorder(state, run_id, root=root, flow_name=snap.flow_name, hooks=Hooks(*snap.hooks),
                                 shell=tuple(snap.shell), environ=os.environ)
        self.record = RunRecord(run_id, started, current_user(), host_name(), __version__, snap.flowfile_hash,
                                args.argv, tuple(snap.roots))
        self.reporter = make_reporter(mode, out=sys.stdout, err=sys.stderr, quiet=args.quiet, verbose=args.verbose)
        if _plans[0] is not snap.tasks:  # the daemon answers many runs from one snapshot (daemon/answer.py)
            # The snapshot observes every task PROVEN; the rebuilder decides
            # (once: it is pure, and the observation is the same for all).
            decision = decide(None, None, PROVEN)
            # Built by C loops (zip, map, tuple.__new__): a Python loop made 10,000 of them in ~6 ms.
            names, groups, deps = zip(*snap.tasks) if snap.tasks else ((), (), ())
            _plans[:] = snap.tasks, names, tuple(map(tuple.__new__, repeat(PlannedTask), zip(
                names, groups, repeat(decision.will_run), repeat(decision.blocked_by), repeat(decision.reasons),
                map(tuple, deps))))
        _, self.names, planned = _plans
        self.started = RunStarted(run_id, started, snap.flow_name, tuple(snap.roots), planned, jobs)

    def report(self) -> Optional[int]:
        """Record the run and report it, now that it is proven."""
        from ..errors import StateDamagedError
        from ..engine.tally import Tally
        from ..events import Notice, RunFinished, RunResult
        from .guard import survive_closed_pipe

        run_id, recorder, reporter = self.run_id, self.recorder, self.reporter
        try:
            try:
                recorder.begin(self.record, starts_tasks=False)
            except StateDamagedError:
                return None  # nothing shown yet: the full path sets the file aside and runs as a first run
            emit = survive_closed_pipe(reporter)  # as the full path: a reader gone never leaves the run unrecorded
            try:
                emit(self.started)
                for message in self.snap.notices:
                    emit(Notice(run_id, time.time(), message))
                tally = Tally(run_id, emit)
                tally.fresh(self.names)
                finished = time.time()
                counts = tally.counts
                for warning in recorder.finish(RunResult.SUCCESS, finished, counts=counts):
                    emit(Notice(run_id, time.time(), warning))
                emit(RunFinished(run_id, finished, RunResult.SUCCESS, counts, time.monotonic() - self.t0))
            finally:
                reporter.close()
            return 0
        finally:
            self.state.close(last=True)

    def close(self) -> None:
        """Leave it unreported (the files changed): nothing was shown or recorded."""
        self.state.close(last=True)
