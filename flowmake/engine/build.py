"""One run: plan every selected task, show the plan, loop until done, record the end.

`Build` wires the pieces a run is made of, each its own module: the no-op
proof the run may plan from (proof.py), the preview (preview.py: the
rebuilder's first call on every task), the loop (loop.py: schedule +
executor + the rebuilder's second call), the tally of task ends
(tally.py) and the recorder (recorder.py: journal, traces, snapshot,
hooks). The executor is handed in (executors/): `run -n` is the dry
executor, which shows the plan and stops there.
"""

from __future__ import annotations

import os
import signal
import time
from itertools import compress, filterfalse, repeat
from operator import itemgetter
from typing import (TYPE_CHECKING, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple)

from .. import __version__
from ..errors import EXIT_OK, EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM, EXIT_TASK_FAILED
from ..events import Notice, PlannedTask, RunFinished, RunResult, RunStarted
from ..model import RunRecord
from ..store.identity import current_user, host_name, new_run_id
from .loop import Loop
from .plan import PROVEN, decide
from .preview import Preview, observe, preview
from .proof import proven_of, snapshot_cone
from .recorder import Recorder
from .secrets import shown_command
from .signals import Signals
from .snapshot import shortcuts_off
from .tally import Tally

if TYPE_CHECKING:  # names for type checkers only
    from ..events import Event
    from ..model import Observation
    from ..executors.protocol import Executor
    from ..model import Flowfile
    from ..store.state import State
    from . import snapshot as snapshots
    from .graph import Graph
    from .plan import Decision
    from .proof import Cone
    from .restore import OutputCache

    Emit = Callable[[Event], None]

_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)
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
    trigger: Optional[Mapping[str, object]] = None  # what started an unattended run (RunRecord.trigger)


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


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
        prescan: Optional[snapshots.Prescan] = None,
        cache: Optional[OutputCache] = None,
    ) -> None:
        """`prescan`: the no-op path's scan of its snapshot's files, if it started one;
        `cache`: the shared cache stale tasks' outputs may be restored from (engine/restore.py)."""
        self.flowfile = flowfile
        self.graph = graph
        self.state = state
        self.options = options
        self.emit = emit
        self.executor = executor
        self.environ = dict(os.environ if environ is None else environ)
        self.selection = tuple(selection)
        self.run_id = new_run_id()
        self.root = flowfile.root
        self.hasher = executor.files.hasher(state.stat_cache())
        self.traces = state.traces()
        self.forced: Callable[[str], bool] = (lambda name: True) if options.always_make else options.forced.__contains__
        self.signals = Signals(executor.wake)
        self.tally = Tally(self.run_id, emit)
        tasks = flowfile.tasks
        self.recorder = Recorder(state, self.run_id, root=flowfile.root, flow_name=flowfile.name, hooks=flowfile.hooks,
                                 shell=flowfile.shell, environ=self.environ, unsaved=self.hasher.take_unsaved,
                                 settle=self.hasher.settle,
                                 secret_names=lambda: [n for spec in tasks.values() for n in spec.secrets])
        self._prescan = prescan
        self.cache = cache
        if cache is not None:
            cache.begin(self)
        self.observations: Dict[str, Observation] = {}  # what each task was last decided on, in full

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.receive(signum, frame)

    def _check_interrupt(self) -> None:
        if self.signals.first is not None:
            raise Interrupted(self.signals.first)

    def run(self) -> int:
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.getsignal(s) for s in handled}
        for s in handled:
            signal.signal(s, self._on_signal)
        try:
            return self._run()
        except Interrupted as exc:
            # Interrupted before any task started: nothing to kill, nothing recorded as done.
            self._finish(RunResult.INTERRUPTED, started_monotonic=None)
            return _exit_for_signal(exc.signum)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run(self) -> int:
        t0 = time.monotonic()
        started = time.time()
        if not self.executor.runs_commands:
            return self._show_plan(t0)
        ended = self.recorder.end_orphans(self.executor.end_orphans)
        if ended is not None:
            self.emit(Notice(self.run_id, time.time(), ended))
        cone = self._cone()
        if cone is not None and cone.same_rows:
            pv, fresh, order = self._plan_cone(cone)
        else:
            proven, cone = self._proven(cone)
            pv = self._preview(proven)
            fresh, order = self._split_proven(proven)
        self._announce(pv, dry_run=False)
        opts = self.options
        self.recorder.begin(RunRecord(self.run_id, started, current_user(), host_name(), __version__,
                                      self.flowfile.source_hash, opts.argv, opts.roots, trigger=opts.trigger))
        self.observations = pv.observations
        if fresh:
            self.tally.fresh(fresh)  # before any task starts
        loop = Loop(self, pv.decisions, pv.observations, order)
        try:
            loop.run()
        finally:
            self.executor.close()
            self.recorder.commit()
            if self.cache is not None:
                self.cache.finish()  # the stores still under way, before the run's end is shown
        result = RunResult.SUCCESS
        if self.signals.first is not None:
            result = RunResult.INTERRUPTED
        elif self.tally.failed:
            result = RunResult.FAILED
        self._finish(result, started_monotonic=t0)
        if result is RunResult.SUCCESS and not loop.untraced and not shortcuts_off(self.environ):
            self._leave_snapshot(cone, pv)
        if result is RunResult.INTERRUPTED:
            return _exit_for_signal(self.signals.first or signal.SIGINT)
        return EXIT_TASK_FAILED if result is RunResult.FAILED else EXIT_OK

    def _show_plan(self, t0: float) -> int:
        """A dry run: the plan, as the run would start from it; nothing runs, nothing is recorded."""
        pv = self._preview(self._proof()[0])
        self._announce(pv, dry_run=True)
        self.emit(RunFinished(self.run_id, time.time(), RunResult.SUCCESS, pv.counts(),
                              time.monotonic() - t0, dry_run=True))
        return EXIT_OK

    def _proof(self) -> Tuple[Dict[str, str], Optional[Cone]]:
        """Tasks the last run's snapshot still proves fresh (proof.proven_fresh); none for a forced run."""
        return self._proven(self._cone())

    def _cone(self) -> Optional[Cone]:
        """The last run's snapshot's cone (proof.snapshot_cone); None for a forced run."""
        opts = self.options
        if opts.always_make or opts.forced or shortcuts_off(self.environ):
            return None
        return snapshot_cone(self.flowfile, self.graph, self.selection, state_identity=self.state.identity,
                             target_names=opts.target_names, environ=self.environ, prescan=self._prescan)

    def _proven(self, cone: Optional[Cone]) -> Tuple[Dict[str, str], Optional[Cone]]:
        """The selected tasks the cone leaves proven fresh, with their groups."""
        return ({} if cone is None else proven_of(cone, self.selection)), cone

    def _plan_cone(self, cone: Cone) -> Tuple[Preview, Sequence[str], Sequence[str]]:
        """The plan when the snapshot's rows are the selection's (Cone.same_rows): only the cone previewed.

        Every other selected task is proven fresh with its row as the snapshot
        holds it (its group and deps, which the same documents and selection
        make the graph's), so nothing is looked up per task but by C loops:
        one changed source in 100,000 tasks plans its cone, not the graph.
        Returns the preview of the whole selection, the proven tasks and the
        cone's, each in the selection's order.
        """
        planned = cone.planned
        rows = cone.snapshot.tasks
        row_of = dict(zip(map(_first, rows), rows))
        selection = self.selection
        order = list(filter(planned.__contains__, selection))
        fresh = list(filterfalse(planned.__contains__, selection))
        pv = self._preview({}, order)
        cone_rows = {p.name: p._replace(deps=tuple(row_of[p.name][2])) for p in pv.planned}
        decision = decide(None, None, PROVEN)
        # In the selection's order, as a full preview gives them; built by C loops (map, zip, tuple.__new__).
        rows_now = list(map(row_of.__getitem__, selection))
        plan = list(map(tuple.__new__, repeat(PlannedTask), zip(
            selection, map(_second, rows_now), repeat(decision.will_run), repeat(decision.blocked_by),
            repeat(decision.reasons), map(tuple, map(_third, rows_now)))))
        for i in compress(range(len(selection)), map(planned.__contains__, selection)):
            plan[i] = cone_rows[selection[i]]
        pv.planned = plan
        return pv, fresh, order

    def _preview(self, proven: Mapping[str, str], selection: Optional[Sequence[str]] = None) -> Preview:
        return preview(self.flowfile, self.graph, self.selection if selection is None else selection,
                       traces=self.traces, hasher=self.hasher,
                       forced=self.forced, environ=self.environ, check_interrupt=self._check_interrupt,
                       proven_fresh=proven, cache=self.cache)

    def decide_now(self, name: str) -> Decision:
        """The rebuilder's second call, on a task about to start: observed in full now, upstream done."""
        spec, trace, forced = self.flowfile.tasks[name], self.traces.get(name), self.forced(name)
        obs = self.observations[name] = observe(spec, self.hasher, self.environ, trace, forced=forced)
        decision = decide(spec, trace, obs, forced=forced)
        if decision.will_run and self.cache is not None:
            decision = decide(spec, trace, obs, forced=forced, cached=self.cache.lookup(spec, obs))
        return decision

    def _announce(self, pv: Preview, *, dry_run: bool) -> None:
        opts = self.options
        self.emit(RunStarted(self.run_id, time.time(), self.flowfile.name, opts.roots, tuple(pv.planned),
                             opts.jobs or self.executor.slots(),
                             dry_run=dry_run, commands=self._plan_commands(pv) if dry_run else {}))
        for message in opts.notices:
            self.emit(Notice(self.run_id, time.time(), message))

    def _plan_commands(self, pv: Preview) -> Dict[str, str]:
        """What a dry run shows make -n style: the command of each task that would or may run, secrets masked."""
        tasks = self.flowfile.tasks
        return {p.name: shown_command(tasks[p.name], self.environ) for p in pv.planned
                if (p.will_run or p.blocked_by) and tasks[p.name].command is not None}

    def _split_proven(self, proven: Mapping[str, str]) -> Tuple[Sequence[str], Sequence[str]]:
        """The selected tasks proven fresh, to finish before any task starts; the rest, to schedule.

        Proven fresh and fed by nothing that may change: out of the schedule,
        where the cone's tasks take them as finished (one edit in 10,000
        tasks schedules a few).
        """
        if not proven:
            return (), self.selection
        return (list(filter(proven.__contains__, self.selection)),
                list(filterfalse(proven.__contains__, self.selection)))

    def _finish(self, result: RunResult, *, started_monotonic: Optional[float]) -> None:
        finished = time.time()
        duration = time.monotonic() - started_monotonic if started_monotonic is not None else 0.0
        tally = self.tally
        for warning in self.recorder.finish(result, finished, counts=tally.counts, failures=tally.failures,
                                            skipped=tally.skipped):
            self.emit(Notice(self.run_id, time.time(), warning))
        self.emit(RunFinished(self.run_id, finished, result, dict(tally.counts), duration, tuple(tally.failed)))

    def _leave_snapshot(self, cone: Optional[Cone], pv: Preview) -> None:
        opts = self.options
        order = self.tally.order

        def task_rows() -> List[Tuple[str, str, Tuple[str, ...]]]:
            planned = pv.by_name()  # asked for only when the snapshot's rows do not hold as they are
            return [(p.name, p.group, p.deps) for p in map(planned.__getitem__, order)]

        self.recorder.leave_snapshot(
            flowfile=self.flowfile, graph=self.graph, selection=self.selection, hasher=self.hasher, cone=cone,
            task_rows=task_rows,
            forced=opts.always_make or bool(opts.forced), target_names=opts.target_names, roots=opts.roots,
            notices=opts.notices)

