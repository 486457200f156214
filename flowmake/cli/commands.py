"""What each command does, without the command-line parsing.

`app.py` parses arguments and renders errors; this module turns a parsed
command into work: it loads the project (Flowfile + graph), takes the lock
when the command writes, opens the state and calls the build loop or
prints a report (check, init and schema: flowfiles.py). Kept apart from `app.py` so typer stays off every path but
argument parsing, and so tests can call commands directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Mapping, NamedTuple, Optional, Sequence, TextIO

from .. import removal
from ..engine.graph import Graph, build_graph, closure, default_targets, resolve_targets
from ..errors import LockHeldError, UsageError
from ..model import Flowfile
from .guard import survive_closed_pipe
from .statuscmd import keep_order

if TYPE_CHECKING:  # names for type checkers only
    from ..engine.snapshot import Prescan
    from .fastpath import RunArgs


class Project(NamedTuple):
    flowfile: Flowfile
    graph: Graph

    @classmethod
    def load(cls, *, file: Optional[Path], directory: Optional[Path]) -> "Project":
        from ..layout import find_flowfile

        return cls.at(find_flowfile(_enter(directory), file))

    @classmethod
    def at(cls, path: Path) -> "Project":
        """The project of this Flowfile (found by layout.find_flowfile), loaded."""
        from ..engine.snapshot import shortcuts_off

        if shortcuts_off():
            from ..load.flowfile import load

            flowfile = load(path)
            return cls(flowfile, build_graph(flowfile))
        from ..load.loadcache import load_cached
        from ..store.state import state_dir

        flowfile, graph = load_cached(path, state_dir(path.parent), build_graph)
        return cls(flowfile, graph)

    @property
    def root(self) -> Path:
        return self.flowfile.root

    def targets(self, names: Sequence[str]) -> tuple:
        if names:
            return resolve_targets(self.flowfile, self.graph, names)
        return default_targets(self.flowfile, self.graph)


def _enter(directory: Optional[Path]) -> Path:
    if directory is not None:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise UsageError(f"cannot change to directory {directory}: {exc.strerror}") from None
    return Path.cwd()


def flowfile_warnings(flowfile: Flowfile) -> List[str]:
    """What `check` and every run warn about a valid Flowfile."""
    from .shorthand import shadow_warning, shadowed_commands

    return [shadow_warning(name) for name in shadowed_commands(flowfile.groups())]


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def open_state(project: Project, *, for_reading: bool = False):
    """The project's state; `for_reading`: a damaged one is an error, never set aside."""
    from ..store.state import State

    if for_reading:
        return State.open_for_reading(project.root)
    return State.open(project.root, warn=_warn)


def take_lock(project: Project, *, wait: bool):
    from ..store.lock import lock_project

    return lock_project(project.root, wait=wait)


def history_root(*, file: Optional[Path], directory: Optional[Path]) -> Path:
    """The project root without loading the Flowfile (layout.find_history_root)."""
    from ..layout import find_history_root

    return find_history_root(_enter(directory), file)


# -- run -----------------------------------------------------------------------


def run_build(
    project: Project,
    target_names: Sequence[str],
    *,
    jobs: Optional[int],
    dry_run: bool,
    keep_going: bool,
    always_make: bool,
    force: Sequence[str],
    progress: str,
    wait: bool,
    quiet: bool,
    verbose: bool,
    argv: Sequence[str],
    output: Optional[str] = None,
    prescan: Optional[Prescan] = None,
    ci: str = "auto",
    junit_xml: Optional[str] = None,
    trigger: Optional[Mapping[str, object]] = None,
    executor: Optional[str] = None,
    scheduler_address: Optional[str] = None,
    cache: Optional[str] = None, cache_mode: str = "readwrite",
) -> int:
    from ..engine.build import Build, BuildOptions
    from ..executors.registry import ExecutorOptions, choose, select
    from ..report import make_reporter
    from .cioutput import plan_outputs
    from .cachecmd import open_cache
    from .fastpath import progress_mode

    try:
        roots = project.targets(target_names)
    except UsageError as exc:
        _hint_a_command(exc, target_names)
        raise
    selection = closure(project.graph, roots)
    forced = _forced_tasks(project, force, selection=selection, target_names=target_names) if force else frozenset()
    where = choose(project.flowfile, executor=executor, scheduler=scheduler_address, dry_run=dry_run)
    if jobs is None:
        # 0: the cluster's worker threads, followed as workers come and go (engine/loop.py)
        jobs = project.flowfile.jobs or (0 if where.follows_cluster else os.cpu_count() or 1)
    progress = progress_mode(progress)
    extras = plan_outputs(project.flowfile, ci=ci, junit_xml=junit_xml, dry_run=dry_run)
    asked = extras.output_mode(output, project.flowfile.output, progress=progress, quiet=quiet)
    shown = output_mode(asked, project.flowfile.output, progress=progress, quiet=quiet)
    shared = None if dry_run else open_cache(project.flowfile, cache, cache_mode, warn=_warn)
    # A dry run only looks, so it neither waits for nor blocks a real run.
    lock = None if dry_run else take_lock(project, wait=wait)
    try:
        state = open_state(project)
        try:
            keep_order(project.flowfile, project.graph)  # for status to answer from the run's snapshot alone
            reporter, files = extras.wrap(
                make_reporter(progress, out=sys.stdout, err=sys.stderr, quiet=quiet, verbose=verbose, output=shown),
                project.flowfile, progress=progress, output=shown, environ=os.environ)
            options = BuildOptions(
                roots=roots, jobs=jobs, keep_going=keep_going, always_make=always_make,
                forced=forced, argv=tuple(argv), target_names=tuple(target_names), output=shown,
                notices=tuple(flowfile_warnings(project.flowfile)), trigger=trigger,
            )
            runner = select(where.name, ExecutorOptions(project.root, output=shown, scheduler=where.scheduler))
            try:
                build = Build(project.flowfile, project.graph, state, options,
                              emit=survive_closed_pipe(reporter, files), executor=runner, selection=selection,
                              prescan=prescan,
                              cache=shared)
                code = build.run()
            finally:
                runner.close()  # again after the loop's: one interrupted before the loop holds a cluster too
                _close_all(reporter, *files)
            if extras.junit is not None and not dry_run:
                _no_fast_noop(project)
            if dry_run:
                _save_quietly(project, state, build.hasher)
            return code
        finally:
            state.close(last=True)
    finally:
        if lock is not None:
            lock.release()


def _close_all(*reporters) -> None:
    """Close each (the JUnit file is written even when the live view fails to close); raise the first error."""
    error = None
    for reporter in reporters:
        try:
            reporter.close()
        except Exception as exc:
            error = error or exc
    if error is not None:
        raise error


def _no_fast_noop(project: Project) -> None:
    """A JUnit file is written by the full path only: leave the no-op fast path no snapshot to answer from."""
    from ..engine import snapshot as snapshots
    from ..store.state import state_dir

    snapshots.remove(state_dir(project.root))


def _forced_tasks(project: Project, names: Sequence[str], *, selection: Sequence[str],
                  target_names: Sequence[str]) -> frozenset:
    """The tasks `--force` names; one outside the targets and what they need is a usage error, not ignored."""
    selected = set(selection)
    forced: List[str] = []
    for name in names:
        tasks = resolve_targets(project.flowfile, project.graph, [name])
        if selected.isdisjoint(tasks):
            # Without targets the default ones apply (with no `default`, every task: never here).
            targets = list(target_names or project.flowfile.default or ())
            where = "the targets" if target_names else "the [flow] default targets"
            raise UsageError(
                f"--force {name}: {name} is not among the tasks this run selects ({where}: {' '.join(targets)}), "
                "so it would not run",
                file=project.flowfile.path,
                hint=f"add it as a target as well: `flowmake run {' '.join(targets + [name])} --force {name}`",
            )
        forced.extend(tasks)
    return frozenset(forced)


def output_mode(asked: Optional[str], flow_output: Optional[str], *, progress: str, quiet: bool) -> str:
    """The output mode a run uses: `--output`, else `[flow] output`, else the progress mode's own.

    `--output auto` is the default even when the Flowfile names another.
    Plain logs (CI) get every line prefixed as it comes, so a long step is
    never silent; the tree and JSON get `latest` (each running task's latest
    line, throttled), which prints no line of its own; -q, none. `[flow]
    output` is about how text looks: the JSON stream changes only when asked.
    """
    if asked is not None and asked != "auto":
        return asked
    if progress == "json":
        return "latest"
    if quiet:
        return "none"
    if asked is None and flow_output is not None:
        return flow_output
    return "prefixed" if progress == "plain" else "latest"


def _hint_a_command(error: UsageError, target_names: Sequence[str]) -> None:
    """`flowmake stauts` is `flowmake run stauts`: when the unknown first target looks like a command, say so."""
    import difflib  # only on the error path

    from .shorthand import COMMANDS

    first = target_names[0] if target_names else ""
    if f"unknown target '{first}'" not in error.message or (error.hint or "").startswith("did you mean"):
        return  # another target is the unknown one, or a task's name is close to it
    close = difflib.get_close_matches(first, sorted(COMMANDS), n=1, cutoff=0.6)
    if close:
        error.hint = (f"did you mean the command `flowmake {close[0]}`? "
                      "(a first word that is not a command is a target of `flowmake run`)")


def run_parsed(args: RunArgs, *, prescan: Optional[Prescan] = None) -> int:
    """`flowmake run` from its parsed options: fastpath.parse's, or typer's `run` (app.py) for the same RunArgs."""
    # Relative to where flowmake was started, not to -C's directory (entered by Project.load).
    junit_xml = os.path.abspath(args.junit_xml) if args.junit_xml is not None else None
    project = Project.load(file=Path(args.file) if args.file is not None else None,
                           directory=Path(args.directory) if args.directory is not None else None)
    return run_build(project, args.targets, jobs=args.jobs, dry_run=args.dry_run, keep_going=args.keep_going,
                     always_make=args.always_make, force=args.force, progress=args.progress, wait=args.wait,
                     quiet=args.quiet, verbose=args.verbose, argv=args.argv, output=args.output, prescan=prescan,
                     ci=args.ci, junit_xml=junit_xml, executor=args.executor,
                     scheduler_address=args.scheduler_address, cache=args.cache, cache_mode=args.cache_mode)


# -- status (statuscmd.py) ------------------------------------------------------


def _save_quietly(project: Project, state, hasher) -> None:
    """Keep what hashing learnt, unless a run holds the project (it owns the cache then)."""
    try:
        lock = take_lock(project, wait=False)
    except LockHeldError:
        return
    try:
        state.save_stat_entries(hasher.take_unsaved())
    finally:
        lock.release()


# -- clean ---------------------------------------------------------------------


def clean_outputs(project: Project, names: Sequence[str], *, dry_run: bool, wait: bool,
                  out: TextIO = sys.stdout) -> int:
    flowfile = project.flowfile
    tasks = resolve_targets(flowfile, project.graph, names) if names else tuple(flowfile.tasks)
    paths = [o for t in tasks for o in flowfile.tasks[t].outputs]
    lock = None if dry_run else take_lock(project, wait=wait)
    try:
        removed = 0
        for rel in paths:
            full = project.root / rel.rstrip("/")
            if not (full.exists() or full.is_symlink()):
                continue
            if dry_run:
                leak = removal.way_out(str(project.root), rel)
                if leak is not None:
                    _warn(removal.refusal(rel, leak))
                    continue
                removed += 1
                out.write(f"would remove {rel}\n")
                continue
            refused = removal.remove(str(project.root), rel, tree=rel.endswith("/"))
            if refused is not None:
                _warn(refused)
                continue
            removed += 1
            out.write(f"removed {rel}\n")
        if not dry_run:
            from ..engine import snapshot as snapshots
            from ..store.state import state_dir

            snapshots.remove(state_dir(project.root))
            state = open_state(project)
            try:
                state.forget_tasks(tasks, paths)
            finally:
                state.close()
        verb = "would remove" if dry_run else "removed"
        out.write(f"{verb} {removed} of {len(paths)} declared outputs of {len(tasks)} tasks\n")
    finally:
        if lock is not None:
            lock.release()
    return 0
