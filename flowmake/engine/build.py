"""The loop: schedule + runner + rebuilder + state, reporting through events.

One coordinator (the calling thread) owns the schedule, the state and the
hasher, and moves the tasks' output through the runner between its steps:
there are no other threads. Each task
is decided twice: once in the preview (what the run will do, shown up front
and by `--dry-run` / `status`), and again just before it starts, when its
upstream outputs exist, which is what gives early cutoff.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import time

from .. import __version__
from ..errors import EXIT_OK, EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM, EXIT_TASK_FAILED
from ..events import (
    Notice,
    PlannedTask,
    RunFinished,
    RunInterrupted,
    RunResult,
    RunStarted,
    TaskFinished,
    TaskLines,
    TaskOutput,
    TaskStarted,
    TaskStatus,
    TaskWaiting,
)
from ..executors.messages import Command, Completion, OutputLine, OutputLines
from ..layout import LogNames, run_log_dir
from ..masking import MIN_LENGTH, Mask
from ..model import (
    AttemptRecord,
    Flowfile,
    Observation,
    Reason,
    ReasonKind,
    RunRecord,
    TaskSpec,
    Trace,
)
from ..records import TYPE_CHECKING, NamedTuple
from ..store.hashing import RACY_WINDOW_NS, hash_file, source_hash
from ..store.identity import current_user, host_name, new_run_id
from ..store.state import State, state_dir
from . import snapshot as snapshots
from .graph import Graph, downstream
from .plan import (
    always_runs,
    command_hash,
    decide,
    env_hashes,
    env_input_hash,
    fingerprint,
    runs_anyway,
    upstream_proof_reasons,
)
from .schedule import Schedule

if TYPE_CHECKING:  # typing costs every run ~4 ms to import (records.py); events.Event is a type only
    from typing import (
        Callable,
        Dict,
        FrozenSet,
        List,
        Mapping,
        Optional,
        Sequence,
        Set,
        Tuple,
    )

    from ..events import Event
    from ..executors.protocol import Executor
    from ..store.hashing import FileHasher

    Emit = Callable[[Event], None]

GRACE_PERIOD = 5.0  # seconds between SIGTERM and SIGKILL on interrupt
# Attempt records of quick successful tasks are committed in batches: a
# commit per task cost about a quarter of a millisecond of CPU per task.
MAX_UNRECORDED = 32  # attempts committed together at most
RECORD_DELAY = 0.1  # seconds a quick task's record may wait for others
QUICK_TASK = 1.0  # seconds: a task that took longer is committed at once, so a kill cannot lose much work
_EXIT_FOR_SIGNAL = {int(signal.SIGINT): EXIT_SIGINT, int(signal.SIGTERM): EXIT_SIGTERM,
                    int(signal.SIGHUP): EXIT_SIGHUP}


def _exit_for_signal(signum: int) -> int:
    return _EXIT_FOR_SIGNAL.get(int(signum), EXIT_SIGINT)



class BuildOptions(NamedTuple):
    roots: Tuple[str, ...]  # resolved task names
    jobs: int = 1
    keep_going: bool = False
    always_make: bool = False
    forced: FrozenSet[str] = frozenset()
    argv: Tuple[str, ...] = ()
    target_names: Tuple[str, ...] = ()  # as given on the command line (keys the no-op snapshot)
    output: str = "latest"  # what tasks print, as shown: model.OUTPUT_MODES or "latest" (commands.output_mode)
    # Warnings about the Flowfile that every run repeats (a task named like a
    # command); the no-op snapshot keeps them for the fast path.
    notices: Tuple[str, ...] = ()


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# -- observing and previewing --------------------------------------------------


def observe(spec: TaskSpec, hasher: FileHasher, environ: Mapping[str, str], trace: Optional[Trace], *,
            forced: bool, memo: Optional[Dict[str, Optional[str]]] = None) -> Observation:
    """The task's fingerprint parts and output hashes as they are now.

    The outputs of a task that runs anyway only add reasons, so their
    recorded hashes are taken while their stats match (FileHasher.hash_known).
    `memo` shares hashes between tasks while nothing runs (the preview), where
    each produced file is looked at once as an output and again as an input.
    """
    hash_of: Callable[[str], Optional[str]]
    if memo is None:
        hash_of = hasher.hash
    else:
        def hash_of(path: str) -> Optional[str]:
            if path not in memo:
                memo[path] = hasher.hash(path)
            return memo[path]
    obs = Observation(command_hash(spec), env_hashes(spec, environ), {p: hash_of(p) for p in spec.inputs}, {})
    if spec.outputs and runs_anyway(spec, trace, obs, forced=forced):
        known = hasher.hash_known  # not memoised: a task below reads them only after they are rewritten
        return obs._replace(outputs={p: memo[p] if memo and p in memo else known(p) for p in spec.outputs})
    return obs._replace(outputs={p: hash_of(p) for p in spec.outputs})


def task_reasons(
    spec: TaskSpec, trace: Optional[Trace], obs: Observation, *, forced: bool, blocked: bool = False
) -> Tuple[Reason, ...]:
    """`blocked`: below a stale task, with `obs` lacking the inputs (plan.upstream_proof_reasons)."""
    if spec.command is None:
        # A pure group (`after` only) has nothing to run: it is as fresh as its deps.
        return (Reason(ReasonKind.FORCED),) if forced else ()
    if blocked:
        return upstream_proof_reasons(spec, trace, obs, forced=forced)
    return decide(spec, trace, obs, forced=forced)


def _blocked_reasons(spec: TaskSpec, trace: Optional[Trace], hasher: FileHasher, environ: Mapping[str, str], *,
                     forced: bool) -> Tuple[Reason, ...]:
    """The reasons of a task below a stale one that no upstream run can change (plan.upstream_proof_reasons)."""
    # Its outputs decide only whether it shows as stale or blocked until then.
    outputs = {p: hasher.hash_known(p) for p in spec.outputs}
    obs = Observation(command_hash(spec), env_hashes(spec, environ), {}, outputs)
    return task_reasons(spec, trace, obs, forced=forced, blocked=True)


class Preview:
    __slots__ = ("planned", "observations")

    def __init__(self) -> None:
        self.planned: List[PlannedTask] = []
        self.observations: Dict[str, Observation] = {}

    def by_name(self) -> Dict[str, PlannedTask]:
        return {p.name: p for p in self.planned}


def preview(
    flowfile: Flowfile,
    graph: Graph,
    selection: Sequence[str],
    *,
    traces: Mapping[str, Trace],
    hasher: FileHasher,
    forced: Callable[[str], bool],
    environ: Mapping[str, str],
    check_interrupt: Callable[[], None] = lambda: None,
    proven_fresh: Mapping[str, str] = {},
    always_blocks: bool = True,
) -> Preview:
    """Decide every selected task as things stand, in topological order.

    A task below a stale one is `blocked`: its inputs will be rewritten first,
    so it is decided only when it is about to start. Tasks in `proven_fresh`
    (see `Build._proven_fresh`; task -> group) are fresh without looking at
    them, or even at their specs. Without `always_blocks` (status), a task
    that runs on every run (plan.always_runs) does not block the tasks below
    it: they are decided on the files as they are, as if it rewrote them
    byte for byte. A run must wait for it instead, to see what it writes.
    """
    selected = set(selection)
    everything = len(selected) == len(graph.deps)  # then every dependency is selected too
    result = Preview()
    memo: Dict[str, Optional[str]] = {}
    unsettled: Set[str] = set()  # stale or blocked
    plan = result.planned.append
    new = tuple.__new__  # PlannedTask's own __new__ costs ~0.4 us, 4 ms over 10,000 proven-fresh tasks
    for name in selection:
        deps = graph.deps[name] if everything else tuple(d for d in graph.deps[name] if d in selected)
        group = proven_fresh.get(name)
        if group is not None:
            plan(new(PlannedTask, (name, group, False, (), (), deps)))
            continue
        check_interrupt()
        spec = flowfile.tasks[name]
        blocked_by = tuple(d for d in deps if d in unsettled)
        if blocked_by:
            # Inputs will be rewritten upstream first, so they are not looked
            # at yet; the other reasons (command, env, outputs, never run) are
            # final. The task is decided in full once it is ready (_settle).
            reasons = _blocked_reasons(spec, traces.get(name), hasher, environ, forced=forced(name))
            reasons += (Reason(ReasonKind.UPSTREAM_STALE, blocked_by[0]),) if not reasons else ()
            will_run = any(r.kind is not ReasonKind.UPSTREAM_STALE for r in reasons)
        else:
            trace = traces.get(name)
            obs = observe(spec, hasher, environ, trace, forced=forced(name), memo=memo)
            result.observations[name] = obs
            reasons = task_reasons(spec, trace, obs, forced=forced(name))
            will_run = bool(reasons)
        if reasons and (always_blocks or not always_runs(spec)):
            unsettled.add(name)
        result.planned.append(PlannedTask(name, spec.group, will_run, blocked_by, reasons, deps))
    return result


# -- the run -------------------------------------------------------------------


class _Sensor:
    """A `wait_for` task waiting for its files to arrive and hold still."""

    __slots__ = ("deadline", "next_poll", "seen", "pending", "started")

    def __init__(self, *, deadline: float, next_poll: float, seen: Dict[str, Optional[Tuple[int, int]]],
                 pending: Tuple[str, ...], started: float) -> None:
        self.deadline = deadline  # monotonic
        self.next_poll = next_poll
        self.seen = seen  # path -> (size, mtime_ns) at the last poll
        self.pending = pending  # not yet arrived, as last reported
        self.started = started  # wall clock


class _Active(NamedTuple):
    spec: TaskSpec
    reasons: Tuple[Reason, ...]
    obs: Observation
    attempt: int
    log_rel: str
    command: Optional[str]


class Build:
    def __init__(
        self,
        flowfile: Flowfile,
        graph: Graph,
        state: State,
        options: BuildOptions,
        *,
        emit: Emit,
        executor: Executor,
        environ: Optional[Mapping[str, str]] = None,
        selection: Sequence[str],
        report_fresh: bool = True,
        prescan: Optional[snapshots.Prescan] = None,
    ) -> None:
        self.flowfile = flowfile
        self.graph = graph
        self.state = state
        self.options = options
        self.emit = emit
        self.environ = dict(os.environ if environ is None else environ)
        self.selection = tuple(selection)
        self.run_id = new_run_id()
        self.root = flowfile.root
        self._root_dir = str(flowfile.root)  # for os.path on the per-task path: pathlib costs more
        self.executor = executor
        self.files = executor.files
        self.hasher = executor.files.hasher(state.stat_cache())
        self._signals: List[int] = []  # received, not yet acted on (-1: a second Ctrl-C)
        self._signal: Optional[int] = None
        self.counts: Dict[str, int] = {s.value: 0 for s in TaskStatus}
        self.failed: List[str] = []
        self._attempts: Dict[str, int] = {}  # task -> number of its next attempt
        self._log_names: Optional[LogNames] = None  # made when the first task starts
        self._failures: List[TaskFinished] = []
        self._begun = False  # the run is recorded in the journal
        self._hold_started: Optional[List[TaskStarted]] = None
        # Finished attempts not yet committed: see _record_attempt.
        self._unrecorded: List[Tuple[AttemptRecord, Optional[Trace]]] = []
        self._record_due = math.inf  # monotonic time by which they are committed
        self._finish_order: List[str] = []
        self._skipped: Dict[str, str] = {}  # task -> why: recorded with the run's end, for reports
        # False for a reporter that ignores fresh tasks' task_finished events
        # (report.shows_fresh_tasks): most of a run over a big graph is them.
        self._report_fresh = report_fresh
        self._untraced = False  # a task succeeded without a trace: it is not fresh next time
        # The snapshot _proven_fresh planned from, and the cone it left to plan.
        self._cone_of_previous: Optional[Tuple[snapshots.Snapshot, Set[str]]] = None
        self._proven: Dict[str, str] = {}  # tasks that snapshot proves fresh -> their groups
        self._prescan = prescan  # the no-op path's scan of that snapshot's files, if it started one

    # signal handling: the handler only records and wakes the coordinator

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            self._signals.append(-1)  # second Ctrl-C: kill now
        else:
            if self._signal is None:
                self._signal = signum
            self._signals.append(signum)
        self.executor.wake()

    def _check_interrupt(self) -> None:
        if self._signal is not None:
            raise Interrupted(self._signal)

    def run(self) -> int:
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.getsignal(s) for s in handled}
        for s in handled:
            signal.signal(s, self._on_signal)
        try:
            return self._run()
        except Interrupted as exc:
            # Interrupted before any task started: nothing to kill, nothing recorded as done.
            self._finish_run(RunResult.INTERRUPTED, time.time(), started_monotonic=None)
            return _exit_for_signal(exc.signum)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run(self) -> int:
        t0 = time.monotonic()
        self.started = time.time()
        dry_run = not self.executor.runs_commands
        if not dry_run:
            # A dry run only looks: the lock may be another run's, whose tasks are live.
            self._reap_orphans()
        traces = self.state.traces()
        opts = self.options
        forced = (lambda name: True) if opts.always_make else (lambda name: name in opts.forced)
        self._forced = forced
        self._traces = traces
        self._proven = self._proven_fresh()
        pv = preview(
            self.flowfile, self.graph, self.selection, traces=traces, hasher=self.hasher, forced=forced,
            environ=self.environ, check_interrupt=self._check_interrupt, proven_fresh=self._proven,
        )
        self.emit(
            RunStarted(self.run_id, time.time(), self.flowfile.name, opts.roots, tuple(pv.planned), opts.jobs,
                       dry_run=dry_run, commands=self._plan_commands(pv) if dry_run else {})
        )
        for message in opts.notices:
            self.emit(Notice(self.run_id, time.time(), message))
        if dry_run:
            self.emit(RunFinished(self.run_id, time.time(), RunResult.SUCCESS, self._preview_counts(pv),
                                  time.monotonic() - t0, dry_run=True))
            return EXIT_OK
        snapshots.remove(state_dir(self.root))  # this run may change what it proved
        self._begun = True
        self.state.begin_run(
            RunRecord(self.run_id, self.started, current_user(), host_name(), __version__,
                      self.flowfile.source_hash, opts.argv, opts.roots)
        )
        try:
            self._loop(pv)
        finally:
            self.executor.close()
            self._commit_attempts()
        result = RunResult.SUCCESS
        if self._signal is not None:
            result = RunResult.INTERRUPTED
        elif self.failed:
            result = RunResult.FAILED
        self._finish_run(result, time.time(), started_monotonic=t0)
        if result is RunResult.SUCCESS and not self._untraced:
            self._write_snapshot()
        if result is RunResult.INTERRUPTED:
            return _exit_for_signal(self._signal or signal.SIGINT)
        return EXIT_TASK_FAILED if result is RunResult.FAILED else EXIT_OK

    def _proven_fresh(self) -> Dict[str, str]:
        """Selected tasks that the last run's snapshot still proves fresh, with their groups.

        Its proof holds for every task none of whose files has changed stat
        since or is a suspect, and that no task with such a file feeds:
        planning need only look at the cone below the changed files (one edit
        in 10,000 tasks plans a handful, not 10,000), and no other task's
        spec need even be read (loadcache.PagedTasks).
        """
        opts = self.options
        if opts.always_make or opts.forced:
            return {}
        directory = state_dir(self.root)
        snap = self._prescan.snapshot_if_current(directory) if self._prescan is not None else None
        if snap is None:
            snap = snapshots.read(directory)
        if (snap is None or snap.state_identity != self.state.identity
                or snap.flowfile_hash != self.flowfile.source_hash
                or not snapshots.applies(snap, version=__version__, flowfile=str(self.flowfile.path),
                                         targets=opts.target_names, environ=self.environ)
                or {task[0] for task in snap.tasks} != set(self.selection)):
            return {}
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            changed = self._prescan.changed(snap.files, root_fd) if self._prescan is not None else None
            if changed is None:
                changed = snapshots.changed_files(snap.files, root_fd)
        finally:
            os.close(root_fd)
        changed.update(snap.suspects)
        # A snapshot is only ever made of plain paths (no globs, no directory
        # outputs), so the tasks a file touches are its declared readers and producer.
        readers, producers = self.graph.readers, self.graph.producers
        touched = {name for path in changed for name in readers.get(path, ())}
        touched.update(producers[path] for path in changed if path in producers)
        touched.intersection_update(self.selection)
        cone = downstream(self.graph, touched).union(touched)
        self._cone_of_previous = (snap, cone)
        return {name: group for name, group, *_ in snap.tasks if name not in cone}

    def _plan_commands(self, pv: Preview) -> Dict[str, str]:
        """What a dry run shows make -n style: the command of each task that would or may run, secrets masked."""
        tasks = self.flowfile.tasks
        return {p.name: self._shown_command(tasks[p.name]) for p in pv.planned
                if (p.will_run or p.blocked_by) and tasks[p.name].command is not None}

    def _preview_counts(self, pv: Preview) -> Dict[str, int]:
        stale = sum(1 for p in pv.planned if p.will_run)
        blocked = sum(1 for p in pv.planned if not p.will_run and p.blocked_by)
        return {"stale": stale, "blocked": blocked, "fresh": len(pv.planned) - stale - blocked}

    def _finish_run(self, result: RunResult, finished: float, *, started_monotonic: Optional[float]) -> None:
        duration = time.monotonic() - started_monotonic if started_monotonic is not None else 0.0
        if self._begun:
            # Only a recorded run gets an end record and alerts: one interrupted
            # while still hashing never started any task.
            self.state.save_stat_entries(self.hasher.take_unsaved())
            self.state.finish_run(self.run_id, finished=finished, result=result.value,
                                  skipped=None if result is RunResult.SUCCESS else self._skipped)
            self._fire_hooks(result, finished)
        self.emit(RunFinished(self.run_id, finished, result, dict(self.counts), duration, tuple(self.failed)))

    def _fire_hooks(self, result: RunResult, finished: float) -> None:
        hooks = self.flowfile.hooks
        if not (hooks.on_success or hooks.on_failure or hooks.webhook):
            return
        from .hooks import RunSummary, fire

        summary = RunSummary(self.run_id, self.flowfile.name, result, self.started, finished, dict(self.counts),
                             tuple(self._failures), run_log_dir(self.run_id))
        secret_names = [n for spec in self.flowfile.tasks.values() for n in spec.secrets]
        for warning in fire(hooks, summary, root=self.root, shell=self.flowfile.shell, environ=self.environ,
                            secret_names=secret_names):
            self.emit(Notice(self.run_id, time.time(), warning))

    def _write_snapshot(self) -> None:
        """Every task is fresh now: leave the proof that lets the next run skip planning."""
        tasks = self.flowfile.tasks
        if self._cone_of_previous is not None:
            # Planned from the previous snapshot, which this Flowfile and selection
            # were allowed: outside the cone every file kept its stat and its record,
            # and its task rows and env_inputs hashes (checked against this
            # environment) hold as they are.
            previous, cone = self._cone_of_previous
            env_inputs, task_rows = dict(previous.env_inputs), tuple(previous.tasks)
            cone_files = [p for name in self.selection if name in cone
                          for p in (*tasks[name].inputs, *tasks[name].outputs)]
            collected = snapshots.collect_files(cone_files, self.hasher.entry)
            if collected is not None:
                # The cone's files first: in an edit-run-edit-run loop they are the
                # ones that change next, and the no-op path stops at the first change.
                collected = (collected[0].plus(previous.files.without(set(cone_files))), collected[1])
        else:
            specs = [tasks[name] for name in self.selection]
            env_inputs = {n: env_input_hash(n, self.environ) for spec in specs for n in spec.env_inputs}
            task_rows = tuple((p.name, p.group, p.deps) for p in map(self._planned.__getitem__, self._finish_order))
            forced = self.options.always_make or bool(self.options.forced)
            if not snapshots.snapshot_allowed(specs, forced=forced, uses_globs=self.flowfile.uses_globs):
                return
            if self.flowfile.has_secrets:
                return  # its hook commands would be copied under .flowmake, where no secret may be
            collected = snapshots.collect_files((p for spec in specs for p in (*spec.inputs, *spec.outputs)),
                                                self.hasher.entry)
        flowfile = str(self.flowfile.path)
        ff_stat = snapshots.stat_key(flowfile)
        if collected is None or ff_stat is None or time.time_ns() - ff_stat[1] <= RACY_WINDOW_NS:
            return  # a file never hashed, or a Flowfile too fresh to vouch for by its stat
        includes = snapshots.include_stats(str(self.root / rel) for rel in self.flowfile.includes)
        if includes is None or any(time.time_ns() - stat[1] <= RACY_WINDOW_NS for _, stat in includes):
            return  # an included file gone, or too fresh to vouch for by its stat
        parts = [(self.flowfile.path.name, hash_file(self.flowfile.path))]
        parts += [(rel, hash_file(self.root / rel)) for rel in self.flowfile.includes]
        if source_hash(parts) != self.flowfile.source_hash:
            return  # edited while we ran
        hooks = self.flowfile.hooks
        snapshots.write(state_dir(self.root), snapshots.Snapshot(
            flowfile=flowfile, flowfile_stat=ff_stat, flowfile_hash=self.flowfile.source_hash,
            targets=self.options.target_names, env_inputs=env_inputs, flow_name=self.flowfile.name,
            jobs=self.flowfile.jobs, roots=self.options.roots,
            tasks=task_rows,
            files=collected[0], suspects=collected[1], hooks=(hooks.on_failure, hooks.on_success, hooks.webhook),
            shell=self.flowfile.shell,
            version=__version__,
            state_identity=self.state.identity,
            includes=includes,
            notices=self.options.notices,
        ))

    def _reap_orphans(self) -> None:
        dead = self.state.unfinished_runs()
        if not dead:
            return
        ended = self.executor.end_orphans(dead)
        self.state.forget_runs(dead)
        if ended:
            names = ", ".join(sorted(set(ended)))
            self.emit(Notice(self.run_id, time.time(),
                             f"ended {len(ended)} task process group(s) left running by a killed run ({names})"))

    # -- the main loop --------------------------------------------------------

    def _loop(self, pv: Preview) -> None:
        # What exists now (Flowfile, graph, plan) lives until the end: keep the
        # cyclic collector, off while loading (__main__.py), off those objects.
        gc.freeze()
        gc.enable()
        planned = pv.by_name()
        self._planned = planned
        self._observations = pv.observations
        order: Sequence[str] = self.selection
        if self._proven:
            # Proven fresh and fed by nothing that may change: done before any
            # task starts, and out of the schedule, where the cone's tasks
            # take them as finished (one edit in 10,000 tasks schedules a few).
            proven = self._proven
            if self._report_fresh:
                for name in self.selection:
                    if name in proven:
                        self._finish_task(name, TaskStatus.FRESH)
            else:  # _finish_task's bookkeeping for 10,000 at once, no event to send
                fresh = [name for name in self.selection if name in proven]
                self.counts[TaskStatus.FRESH.value] += len(fresh)
                self._finish_order.extend(fresh)
            order = [name for name in self.selection if name not in proven]
        sched = Schedule(order, self.graph.deps, keep_going=self.options.keep_going)
        self._sched = sched
        executor = self.executor
        self._active: Dict[str, _Active] = {}
        waiting_to_start: List[str] = []  # ready and stale, waiting for a free slot
        self._waiting_to_start = waiting_to_start
        retry_at: Dict[str, Tuple[float, int]] = {}  # task -> (monotonic time, next attempt)
        self._sensors: Dict[str, _Sensor] = {}
        self._arrived: Set[str] = set()
        self._waited: Dict[str, Tuple[float, float]] = {}  # sensor task -> wall-clock wait, for its record
        kill_deadline: Optional[float] = None
        while True:
            if self._signal is None:
                self._settle_ready(sched, waiting_to_start)
                now = time.monotonic()
                if self._sensors and not sched.stopped:
                    self._poll_sensors(now)
                    self._settle_ready(sched, waiting_to_start)
                for name, (when, attempt) in list(retry_at.items()):
                    if when <= now and not sched.stopped:
                        del retry_at[name]
                        waiting_to_start.insert(0, name)
                        self._attempts[name] = attempt
                while waiting_to_start and len(self._active) < self.options.jobs and not sched.stopped:
                    self._start(waiting_to_start.pop(0))
                    self._settle_ready(sched, waiting_to_start)
            if not self._active and (sched.stopped or self._signal is not None or
                                     (not waiting_to_start and not retry_at and not self._sensors
                                      and not sched.has_ready())):
                break
            timeout = 0.5
            if retry_at:
                timeout = max(0.0, min(min(w for w, _ in retry_at.values()) - time.monotonic(), timeout))
            if self._sensors:
                soonest = min(min(x.next_poll, x.deadline) for x in self._sensors.values())
                timeout = max(0.0, min(soonest - time.monotonic(), timeout))
            if kill_deadline is not None:
                timeout = max(0.0, min(kill_deadline - time.monotonic(), timeout))
            if self._unrecorded:
                now = time.monotonic()
                if len(self._unrecorded) >= MAX_UNRECORDED or now >= self._record_due:
                    self._commit_attempts()
                else:
                    timeout = max(0.0, min(self._record_due - now, timeout))
            messages = executor.wait(timeout)
            while self._signals:
                if self._signals.pop(0) == -1:
                    executor.cancel(at_once=True)
                    self._stopping(kill_in=0.0)
                elif kill_deadline is None:
                    sched.stop()
                    retry_at.clear()
                    executor.cancel(at_once=False)
                    kill_deadline = time.monotonic() + GRACE_PERIOD
                    self._stopping(kill_in=GRACE_PERIOD)
            if kill_deadline is not None and time.monotonic() >= kill_deadline:
                executor.cancel(at_once=True)
                kill_deadline = None
            for msg in messages:
                if isinstance(msg, OutputLine):
                    self.emit(TaskOutput(self.run_id, time.time(), msg.task, msg.line))
                    continue
                if isinstance(msg, OutputLines):
                    self.emit(TaskLines(self.run_id, time.time(), msg.task, tuple(msg.lines), msg.omitted))
                    continue
                missing = self._missing_outputs(msg)
                if self._signal is None and not sched.stopped and missing == []:
                    # Refill the freed slot first: the new task runs while this
                    # one's outputs are hashed and its record committed. Its
                    # task_started event waits, so events still read in order.
                    self._hold_started = []
                    while waiting_to_start and len(self._active) - 1 < self.options.jobs:
                        self._start(waiting_to_start.pop(0))
                retry = self._complete(msg, missing)
                held, self._hold_started = self._hold_started or [], None
                for event in held:
                    self.emit(event)
                if retry is not None:
                    retry_at[msg.task] = retry
        for name in list(retry_at):
            if self._signal is None:
                self._fail(name, exit_code=None, message="failed; retry abandoned after another task failed",
                           duration=0.0, log=None, tail=(), attempt=retry_at[name][1] - 1)
        why = ("not started: the run was interrupted" if self._signal is not None
               else "not started: the run stopped after a failure (use -k to keep going)")
        for name in sched.unfinished():
            self._finish_task(name, TaskStatus.SKIPPED, message=why)

    def _stopping(self, *, kill_in: float) -> None:
        """Say what an interrupt is doing while the tasks are given their grace period."""
        if self._active:
            self.emit(RunInterrupted(self.run_id, time.time(), _signal_name(self._signal or signal.SIGINT),
                                     tuple(self._active), kill_in))

    def _settle_ready(self, sched: Schedule, waiting_to_start: List[str]) -> None:
        """Resolve every ready task that needs no process; queue the rest."""
        while sched.has_ready():
            for name in sched.pop_ready():
                if self.flowfile.tasks[name].wait_for and name not in self._arrived:
                    self._begin_sensing(name)
                    continue
                if self._settle(name):
                    sched.succeeded(name)
                else:
                    waiting_to_start.append(name)

    def _settle(self, name: str) -> bool:
        """True when the task is done without running (fresh, or a pure group)."""
        plan = self._planned[name]
        if not plan.will_run and not plan.blocked_by:
            self._finish_task(name, TaskStatus.FRESH)
            return True
        spec = self.flowfile.tasks[name]
        if plan.blocked_by or spec.wait_for:
            # Decided now that upstream outputs (or awaited files) exist.
            trace, forced = self._traces.get(name), self._forced(name)
            obs = observe(spec, self.hasher, self.environ, trace, forced=forced)
            self._observations[name] = obs
            reasons = task_reasons(spec, trace, obs, forced=forced)
            if not reasons:
                self._finish_task(name, TaskStatus.FRESH)  # early cutoff
                return True
            self._planned[name] = PlannedTask(name, plan.group, True, (), reasons, plan.deps)
        if spec.command is None:
            self.emit(TaskStarted(self.run_id, time.time(), name, self._planned[name].reasons, None))
            self._finish_task(name, TaskStatus.OK)
            return True
        return False

    # -- sensors -------------------------------------------------------------

    def _begin_sensing(self, name: str) -> None:
        spec = self.flowfile.tasks[name]
        now = time.monotonic()
        sensor = _Sensor(deadline=now + spec.wait_timeout, next_poll=now, seen={p: None for p in spec.wait_for},
                         pending=(), started=time.time())
        self._sensors[name] = sensor

    def _poll_sensors(self, now: float) -> None:
        for name, sensor in list(self._sensors.items()):
            if now < sensor.next_poll and now < sensor.deadline:
                continue
            spec = self.flowfile.tasks[name]
            pending = []
            wall = time.time()
            for path in spec.wait_for:
                seen = self.files.stat_pair(path)
                before = sensor.seen[path]
                sensor.seen[path] = seen
                if seen is None:
                    pending.append(path)
                elif seen != before and wall - seen[1] / 1e9 < spec.wait_poll:
                    pending.append(path)  # still being written: wait one more quiet poll
            if not pending:
                del self._sensors[name]
                self._arrived.add(name)
                self._waited[name] = (sensor.started, time.time())
                if self._settle(name):
                    self._sched.succeeded(name)
                else:
                    self._waiting_to_start.append(name)
                continue
            if now >= sensor.deadline:
                del self._sensors[name]
                missing = [p for p in pending if sensor.seen[p] is None]
                detail = ("still missing " + ", ".join(missing)) if missing else \
                    ("still changing " + ", ".join(pending))
                message = f"wait_for timed out after {_fmt_seconds(spec.wait_timeout)}: {detail}"
                self._waited[name] = (sensor.started, time.time())
                self._record_attempt(spec, 1, "failed", self._planned[name].reasons, self._shown_command(spec),
                                     sensor.started, None, Observation("", {}, {}, {}), {}, None, None, message,
                                     trace=None)
                self._fail(name, exit_code=None, message=message, duration=time.time() - sensor.started,
                           log=None, tail=(), attempt=1)
                continue
            if tuple(pending) != sensor.pending:
                sensor.pending = tuple(pending)
                self.emit(TaskWaiting(self.run_id, time.time(), name, sensor.pending))
            sensor.next_poll = now + spec.wait_poll

    def _secret_values(self, spec: TaskSpec) -> List[str]:
        return [self.environ[s] for s in spec.secrets if self.environ.get(s)]

    def _shown_command(self, spec: TaskSpec) -> str:
        """The command as events and records show it: secret values masked."""
        values = self._secret_values(spec)
        return Mask(values).text(spec.command or "") if values else spec.command or ""

    def _start(self, name: str) -> None:
        spec = self.flowfile.tasks[name]
        attempt = self._attempts.get(name, 1)
        plan = self._planned[name]
        # Observed in the preview (nothing upstream ran since: its deps were all
        # fresh) or when it became ready behind a stale task; a retry looks again.
        obs = self._observations.get(name) if attempt == 1 else None
        if obs is None:  # it runs whatever its outputs are
            obs = observe(spec, self.hasher, self.environ, self._traces.get(name), forced=True)
        reasons = plan.reasons
        secret_values = self._secret_values(spec)
        shown_command = self._shown_command(spec)
        unset = [s for s in spec.secrets if s not in self.environ]
        short = [s for s in spec.secrets if 0 < len(self.environ.get(s, "")) < MIN_LENGTH]
        if unset or short:
            # Running without a credential would fail obscurely (or worse, run
            # anonymously); one too short to mask could neither be hidden nor shown.
            message = ("secret " + ", ".join(unset) + " is not set in the environment" if unset else
                       f"secret {', '.join(short)} is shorter than {MIN_LENGTH} characters, too short to mask"
                       " (every such string in the log would become ***): use a longer value")
            self.emit(TaskStarted(self.run_id, time.time(), name, reasons, shown_command, attempt))
            self._record_attempt(spec, attempt, "failed", reasons, shown_command, time.time(), None, obs, {},
                                 None, None, message, trace=None)
            self._fail(name, exit_code=None, message=message, duration=0.0, log=None, tail=(), attempt=attempt)
            return
        self.files.make_parents(spec.outputs)
        if self._log_names is None:
            # Over every task, not the selected ones: a task's log name does not depend on the targets.
            tasks = self.flowfile.tasks
            self._log_names = LogNames(tasks, lambda task: tasks[task].retries + 1)
        log_rel = f"{run_log_dir(self.run_id)}/{self._log_names.name(name, attempt)}"
        env = dict(self.environ)
        env.update(spec.env)
        env["FLOWMAKE_RUN_ID"] = self.run_id
        env["FLOWMAKE_TASK"] = name
        started = time.time()
        event = TaskStarted(self.run_id, started, name, reasons, shown_command, attempt)
        if self._hold_started is not None:
            self._hold_started.append(event)  # shown after the finish that freed its slot
        else:
            self.emit(event)
        try:
            self.executor.start(Command(name, spec.shell, spec.command or "", self._root_dir, env, log_rel,
                                        tuple(secret_values), spec.timeout))
        except OSError as exc:
            message = f"could not start {spec.shell[0]!r}: {exc.strerror or exc}"
            self._record_attempt(spec, attempt, "failed", reasons, shown_command, started, None, obs, {},
                                 None, None, message, trace=None)
            self._fail(name, exit_code=None, message=message, duration=0.0, log=None, tail=(), attempt=attempt)
            return
        self._active[name] = _Active(spec, reasons, obs, attempt, log_rel, shown_command)

    def _missing_outputs(self, done: Completion) -> Optional[List[str]]:
        """The declared outputs a task that exited 0 in time left missing; None when it did not."""
        if done.returncode != 0 or done.timed_out:
            return None
        return self.files.missing(self._active[done.task].spec.outputs)

    def _complete(self, done: Completion, missing: Optional[List[str]]) -> Optional[Tuple[float, int]]:
        """`missing`: _missing_outputs of `done`, looked at once when it came."""
        active = self._active.pop(done.task)
        spec = active.spec
        duration = done.finished - done.started
        # A log that could not be written is not on record (audit verify would miss it).
        log, log_hash = (active.log_rel, done.log_hash) if done.log_error is None else (None, None)
        interrupted = self._signal is not None
        message: Optional[str] = None
        if done.timed_out:
            message = f"timed out (limit {_fmt_seconds(spec.timeout or 0)})"
        elif done.returncode < 0:
            message = f"killed by signal {_signal_name(-done.returncode)}"
        elif done.returncode != 0:
            message = f"exit code {done.returncode}"
        elif done.log_error is not None:
            message = f"could not write its log {active.log_rel}: {done.log_error}"  # SPEC §3: output goes there
        outputs: Dict[str, Optional[str]] = {}
        if message is None:
            if missing:
                message = "did not produce " + ", ".join(map(self.files.describe_missing, missing))
            else:
                outputs = {o: self.hasher.hash(o) for o in spec.outputs}
        exit_code = done.exit_code
        if message is None and not interrupted:
            trace: Optional[Trace] = None  # an input missing when it started: never call that fresh
            if all(v is not None for v in active.obs.inputs.values()):
                trace = Trace(spec.name, fingerprint(active.obs), active.obs.command_hash, dict(active.obs.env),
                              {k: v for k, v in active.obs.inputs.items() if v is not None},
                              {k: v for k, v in outputs.items() if v is not None}, self.run_id)
            else:
                self._untraced = True
            self._record_attempt(spec, active.attempt, "ok", active.reasons, active.command, done.started,
                                 done.finished, active.obs, outputs, log, log_hash, None,
                                 trace=trace, exit_code=exit_code)
            self._finish_task(spec.name, TaskStatus.OK, duration=duration, exit_code=exit_code,
                              log=log, attempt=active.attempt)
            self._sched.succeeded(spec.name)
            return None
        if message is None:
            message = "interrupted"
        status = "interrupted" if interrupted else "failed"
        self._record_attempt(spec, active.attempt, status, active.reasons, active.command, done.started,
                             done.finished, active.obs, outputs, log, log_hash, message,
                             trace=None, exit_code=exit_code)
        if not interrupted and active.attempt <= spec.retries and not self._sched.stopped:
            self.emit(TaskFinished(self.run_id, time.time(), spec.name, TaskStatus.FAILED, duration, exit_code,
                                   message, log, tuple(done.tail), active.attempt, will_retry=True))
            return (time.monotonic() + spec.retry_delay, active.attempt + 1)
        if interrupted:
            # Cut short, not broken: shown as interrupted, without a log tail.
            self._fail(spec.name, exit_code=exit_code, message=message, duration=duration, log=log, tail=(),
                       attempt=active.attempt, status=TaskStatus.INTERRUPTED)
            return None
        self._fail(spec.name, exit_code=exit_code, message=message, duration=duration, log=log,
                   tail=tuple(done.tail), attempt=active.attempt)
        return None

    def _record_attempt(self, spec: TaskSpec, attempt: int, status: str, reasons: Tuple[Reason, ...],
                        command: Optional[str], started: float, finished: Optional[float], obs: Observation,
                        outputs: Mapping[str, Optional[str]], log: Optional[str], log_hash: Optional[str],
                        message: Optional[str], *, trace: Optional[Trace], exit_code: Optional[int] = None) -> None:
        record = AttemptRecord(
            run_id=self.run_id, task=spec.name, attempt=attempt, status=status, reasons=reasons,
            command=command, started=started, finished=finished if finished is not None else time.time(),
            exit_code=exit_code, inputs=dict(obs.inputs), outputs=dict(outputs), log=log, log_hash=log_hash,
            message=message, waited=self._waited.get(spec.name) if attempt == 1 else None,
        )
        # Committed by _commit_attempts once the tasks this one made ready have
        # started, not on the critical path between a task and the next: at
        # once for a failure or a task that took QUICK_TASK or longer, else
        # together with others within RECORD_DELAY. A kill before the commit
        # only means the task is not recorded, so it runs again.
        self._unrecorded.append((record, trace))
        quick = status == "ok" and record.finished - started < QUICK_TASK
        self._record_due = min(self._record_due, time.monotonic() + (RECORD_DELAY if quick else 0.0))

    def _commit_attempts(self) -> None:
        if self._unrecorded:
            finished, self._unrecorded = self._unrecorded, []
            self._record_due = math.inf
            self.state.record_attempts(finished, self.hasher.take_unsaved())

    def _fail(self, name: str, *, exit_code: Optional[int], message: str, duration: float,
              log: Optional[str], tail: Tuple[str, ...], attempt: int,
              status: TaskStatus = TaskStatus.FAILED) -> None:
        """End a task that did not succeed (FAILED or INTERRUPTED) and skip what needs it."""
        self._finish_task(name, status, duration=duration, exit_code=exit_code, message=message,
                          log=log, tail=tail, attempt=attempt)
        if status is TaskStatus.FAILED:
            self.failed.append(name)
        if self._signal is None:
            why = f"upstream failed: {name}"
        else:
            why = "not started: the run was interrupted"
        for skipped in self._sched.failed(name):
            self._finish_task(skipped, TaskStatus.SKIPPED, message=why)

    def _finish_task(self, name: str, status: TaskStatus, *, duration: float = 0.0,
                     exit_code: Optional[int] = None, message: Optional[str] = None, log: Optional[str] = None,
                     tail: Tuple[str, ...] = (), attempt: int = 1) -> None:
        if self._hold_started:
            # A held start of this very task must not come after its finish.
            for held in [e for e in self._hold_started if e.task == name]:
                self._hold_started.remove(held)
                self.emit(held)
        self.counts[status.value] += 1
        self._finish_order.append(name)
        if status is TaskStatus.SKIPPED:
            self._skipped[name] = message or ""
        if status is TaskStatus.FRESH and not self._report_fresh:
            return
        event = TaskFinished(self.run_id, time.time(), name, status, duration, exit_code, message, log, tail, attempt)
        if status is TaskStatus.FAILED:
            self._failures.append(event)
        self.emit(event)


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)
