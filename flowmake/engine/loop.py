"""The loop: the ready-queue hands out tasks, the executor runs them, the rebuilder has the last word.

One coordinator (the calling thread) owns the schedule, the state and the
hasher, and waits on the executor between its steps: there are no other
threads. Each task stale or blocked in the preview is decided again just
before it starts, when its upstream outputs exist (early cutoff); each
that runs is started through the executor (executors/protocol.py), and its
completion is judged here: outputs there and hashed, trace and attempt
handed to the recorder, the task's end to the tally.
"""

from __future__ import annotations

import gc
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..events import (
    RunInterrupted,
    TaskFinished,
    TaskLines,
    TaskOutput,
    TaskPlaced,
    TaskStarted,
    TaskState,
    TaskWaiting,
)
from ..executors.messages import Command, Completion, OutputLine, OutputLines, Placed
from ..layout import LogNames, run_log_dir
from ..model import AttemptRecord, Trace
from .plan import FRESH, Restore, Run, fingerprint
from .preview import observe
from .schedule import Schedule
from .secrets import secrets_refusal, shown_command
from .sensors import Sensors
from .signals import signal_name

if TYPE_CHECKING:  # names for type checkers only
    from ..model import Observation, Reason, TaskSpec
    from .build import Build
    from .plan import Decision

GRACE_PERIOD = 5.0  # seconds between SIGTERM and SIGKILL on interrupt
IDLE_WAIT = 0.5  # seconds the loop waits at most when nothing else is due


class _Active(NamedTuple):
    spec: TaskSpec
    reasons: Tuple[Reason, ...]
    obs: Observation
    attempt: int
    log: str
    command: str  # as shown: secrets masked


class Loop:
    def __init__(self, build: Build, decisions: Mapping[str, Decision], observations: Dict[str, Observation],
                 order: Sequence[str]) -> None:
        """`decisions`: the preview's, of every task in `order` (the selected tasks left to schedule,
        not proven fresh, in topological order); `observations`: what each was decided on, when complete."""
        self.build = build
        self.tasks = build.flowfile.tasks
        self.executor = build.executor
        self.files = build.executor.files
        self.tally = build.tally
        self.signals = build.signals
        self.emit = build.emit
        self.run_id = build.run_id
        # 0: as many as the executor has room for at each start (a cluster's threads, as workers come and go).
        self.jobs = build.options.jobs
        self.decisions: Dict[str, Decision] = dict(decisions)
        self.observations = observations
        self.sched = Schedule(order, build.graph.deps, keep_going=build.options.keep_going)
        self.active: Dict[str, _Active] = {}
        # Ready and stale, waiting for a free slot (a list's pop(0) cost 1.7 s over 100,000 queued at once).
        self.waiting_to_start: Deque[str] = deque()
        self.retry_at: Dict[str, Tuple[float, int]] = {}  # task -> (monotonic time, next attempt)
        self.attempts: Dict[str, int] = {}  # task -> number of its next attempt
        self.sensors = Sensors(self.files.stat_pair)
        self.kill_deadline: Optional[float] = None
        self.untraced = False  # a task succeeded without a trace: it is not fresh next time
        self._log_names: Optional[LogNames] = None  # made when the first task starts (~2 ms per 10,000 tasks)

    def run(self) -> None:
        # What exists now (Flowfile, graph, plan) lives until the end: keep the
        # cyclic collector, off while loading (__main__.py), off those objects.
        gc.freeze()
        gc.enable()
        while True:
            if self.signals.first is None:
                self._start_what_can_start()
            if not self.active and (self.sched.stopped or self.signals.first is not None or not self._more_to_do()):
                break
            messages = self.executor.wait(self._timeout())
            self._act_on_signals()
            self._handle_all(messages)
        self._end()

    def _more_to_do(self) -> bool:
        return bool(self.waiting_to_start or self.retry_at or self.sensors or self.sched.has_ready())

    def _start_what_can_start(self) -> None:
        sched, waiting = self.sched, self.waiting_to_start
        self._settle_ready()
        now = time.monotonic()
        if self.sensors and not sched.stopped:
            self._poll_sensors(now)
            self._settle_ready()
        for name, (when, attempt) in list(self.retry_at.items()):
            if when <= now and not sched.stopped:
                del self.retry_at[name]
                waiting.appendleft(name)
                self.attempts[name] = attempt
        while waiting and len(self.active) < self._jobs() and not sched.stopped:
            self._start(waiting.popleft())
            self._settle_ready()

    def _jobs(self) -> int:
        return self.jobs or max(1, self.executor.slots())

    def _timeout(self) -> float:
        """How long the executor may wait: until the next retry, sensor poll, kill or commit is due."""
        due = [IDLE_WAIT]
        now = time.monotonic()
        if self.retry_at:
            due.append(min(w for w, _ in self.retry_at.values()) - now)
        if self.sensors:
            due.append(self.sensors.soonest() - now)
        if self.kill_deadline is not None:
            due.append(self.kill_deadline - now)
        commit_in = self.build.recorder.due_in()
        if commit_in == 0.0:
            self.build.recorder.commit()
        elif commit_in is not None:
            due.append(commit_in)
        return max(0.0, min(due))

    def _act_on_signals(self) -> None:
        while self.signals.pending:
            if self.signals.pending.pop(0) == -1:
                self.executor.cancel(at_once=True)
                self._stopping(kill_in=0.0)
            elif self.kill_deadline is None:
                self.sched.stop()
                self.retry_at.clear()
                self.executor.cancel(at_once=False)
                self.kill_deadline = time.monotonic() + GRACE_PERIOD
                self._stopping(kill_in=GRACE_PERIOD)
        if self.kill_deadline is not None and time.monotonic() >= self.kill_deadline:
            self.executor.cancel(at_once=True)
            self.kill_deadline = None

    def _handle_all(self, messages: Sequence[object]) -> None:
        """What one wait brought, in order; a freed slot is refilled before its task is judged.

        The new task runs while the ended one's outputs are hashed and its record
        committed; when all that ended together succeeded, all their slots are
        refilled first (a failure would stop the run). Their task_started events
        wait, so events still read in order.
        """
        ended = [m for m in messages if isinstance(m, Completion)]
        missing = {done.task: self._missing_outputs(done) for done in ended}
        together = len(ended) > 1 and all(
            missing[d.task] == [] and _failure(d, self.active[d.task]) is None for d in ended)
        if together:
            self._refill(len(ended))
        for msg in messages:
            if not isinstance(msg, Completion):
                self._handle(msg)
                continue
            if not together and missing[msg.task] == []:
                self._refill(1)
            retry = self._complete(msg, missing[msg.task])
            if not together:
                self.tally.release_held()
            if retry is not None:
                self.retry_at[msg.task] = retry
        self.tally.release_held()  # (together: after all of them; else a no-op)

    def _refill(self, freed: int) -> None:
        """Start waiting tasks in the slots of `freed` tasks that ended well but are not judged yet."""
        if self.signals.first is None and not self.sched.stopped:
            self.tally.held = []
            while self.waiting_to_start and len(self.active) - freed < self._jobs():
                self._start(self.waiting_to_start.popleft())

    def _handle(self, msg: object) -> None:  # any message but a completion
        if isinstance(msg, OutputLine):
            self.emit(TaskOutput(self.run_id, time.time(), msg.task, msg.line))
        elif isinstance(msg, OutputLines):
            self.emit(TaskLines(self.run_id, time.time(), msg.task, tuple(msg.lines), msg.omitted))
        elif isinstance(msg, Placed):
            self.emit(TaskPlaced(self.run_id, time.time(), msg.task, msg.worker))

    def _end(self) -> None:
        """Whatever did not run: a retry given up on, and the tasks never started."""
        interrupted = self.signals.first is not None
        for name in list(self.retry_at):
            if not interrupted:
                self._fail(name, message="failed; retry abandoned after another task failed",
                           attempt=self.retry_at[name][1] - 1)
        why = ("not started: the run was interrupted" if interrupted
               else "not started: the run stopped after a failure (use -k to keep going)")
        for name in self.sched.unfinished():
            self.tally.finish(name, TaskState.SKIPPED, message=why)

    def _stopping(self, *, kill_in: float) -> None:
        """Say what an interrupt is doing while the tasks are given their grace period."""
        if self.active:
            self.emit(RunInterrupted(self.run_id, time.time(), signal_name(self.signals.first or signal.SIGINT),
                                     tuple(self.active), kill_in))

    # -- tasks that need no process ------------------------------------------

    def _settle_ready(self) -> None:
        """Resolve every ready task that needs no process; queue the rest."""
        sched = self.sched
        while sched.has_ready():
            for name in sched.pop_ready():
                spec = self.tasks[name]
                if spec.wait_for and name not in self.sensors.arrived:
                    self.sensors.begin(spec)
                elif self._settle(name):
                    sched.succeeded(name)
                else:
                    self.waiting_to_start.append(name)

    def _settle(self, name: str) -> bool:
        """True when the task is done without running (fresh, restored, or a pure group)."""
        decision = self.decisions.get(name, FRESH)
        if not decision.will_run and not decision.blocked_by:
            self.tally.finish(name, TaskState.FRESH)
            return True
        spec = self.tasks[name]
        if decision.blocked_by or spec.wait_for:
            # Decided again now that upstream outputs (or awaited files) exist.
            decision = self.decisions[name] = self.build.decide_now(name)
            if not decision.will_run:
                self.tally.finish(name, TaskState.FRESH)  # early cutoff
                return True
        if isinstance(decision, Restore):
            if self._restore(spec, decision):
                return True
            decision = self.decisions[name] = Run(decision.reasons)  # not restored after all: it runs
        if spec.command is None:
            self.emit(TaskStarted(self.run_id, time.time(), name, decision.reasons, None))
            self.tally.finish(name, TaskState.OK)
            return True
        return False

    def _restore(self, spec: TaskSpec, decision: Restore) -> bool:
        """Hand a Restore to the shared cache (engine/restore.py); True once its outputs are in place."""
        cache = self.build.cache
        obs = self.observations[spec.name]
        started = time.time()
        outputs = cache.restore(spec, decision.entry, self.files) if cache is not None else None
        if outputs is None:
            return False
        record = AttemptRecord(
            run_id=self.run_id, task=spec.name, attempt=1, status=TaskState.RESTORED.value, reasons=decision.reasons,
            command=shown_command(spec, self.build.environ), started=started, finished=time.time(), exit_code=None,
            inputs=dict(obs.inputs), outputs=dict(outputs), log=None, log_hash=None, message=None,
            restored=cache.provenance(decision.entry))
        self.build.recorder.attempt(record, Trace(spec.name, fingerprint(obs), obs.command_hash, dict(obs.env),
                                                  dict(obs.inputs), dict(outputs), self.run_id))
        produced = record.restored or {}
        self.tally.finish(spec.name, TaskState.RESTORED, duration=record.finished - started,
                          message=f"restored from cache (produced by run {produced.get('run')} on host "
                                  f"{produced.get('host')})")
        return True

    def _poll_sensors(self, now: float) -> None:
        for name, what, detail in self.sensors.poll(now):
            if what == "arrived":
                if self._settle(name):
                    self.sched.succeeded(name)
                else:
                    self.waiting_to_start.append(name)
            elif what == "timed out":
                spec = self.tasks[name]
                started = self.sensors.waited[name][0]
                self._unstarted(spec, 1, self.decisions[name].reasons, shown_command(spec, self.build.environ),
                                str(detail), started=started, inputs={}, duration=time.time() - started)
            else:
                self.emit(TaskWaiting(self.run_id, time.time(), name, detail))  # type: ignore[arg-type]

    # -- tasks that run ------------------------------------------------------

    def _start(self, name: str) -> None:
        spec = self.tasks[name]
        attempt = self.attempts.get(name, 1)
        reasons = self.decisions[name].reasons
        build = self.build
        # Observed in the preview (nothing upstream ran since: its deps were all
        # fresh) or when it became ready behind a stale task; a retry looks again.
        obs = self.observations.get(name) if attempt == 1 else None
        if obs is None:  # it runs whatever its outputs are
            obs = observe(spec, build.hasher, build.environ, build.traces.get(name), forced=True)
        shown = shown_command(spec, build.environ)
        refusal = secrets_refusal(spec, build.environ)
        if refusal is not None:
            self.emit(TaskStarted(self.run_id, time.time(), name, reasons, shown, attempt))
            self._unstarted(spec, attempt, reasons, shown, refusal, started=time.time(), inputs=obs.inputs)
            return
        self.files.make_parents(spec.outputs)
        if self._log_names is None:
            # Over every task, not the selected ones: a task's log name does not depend on the targets.
            tasks = self.tasks
            self._log_names = LogNames(tasks, lambda task: tasks[task].retries + 1)
        log = f"{run_log_dir(self.run_id)}/{self._log_names.name(name, attempt)}"
        env = {**build.environ, **dict(spec.env), "FLOWMAKE_RUN_ID": self.run_id, "FLOWMAKE_TASK": name}
        started = time.time()
        self.tally.started(TaskStarted(self.run_id, started, name, reasons, shown, attempt))
        secrets = tuple(build.environ[s] for s in spec.secrets if build.environ.get(s))
        try:
            self.executor.start(Command(name, spec.shell, spec.command or "", str(build.root), env, log, secrets,
                                        spec.timeout, spec.outputs, spec.resources))
        except OSError as exc:
            message = f"could not start {spec.shell[0]!r}: {exc.strerror or exc}"
            self._unstarted(spec, attempt, reasons, shown, message, started=started, inputs=obs.inputs)
            return
        self.active[name] = _Active(spec, reasons, obs, attempt, log, shown)

    def _missing_outputs(self, done: Completion) -> Optional[List[str]]:
        """The declared outputs a task that exited 0 in time left missing; None when it did not."""
        if done.returncode != 0 or done.timed_out:
            return None
        return self.files.missing(self.active[done.task].spec.outputs)

    def _complete(self, done: Completion, missing: Optional[List[str]]) -> Optional[Tuple[float, int]]:
        """`missing`: _missing_outputs of `done`, looked at once when it came. A retry's (time, attempt), if due."""
        active = self.active.pop(done.task)
        spec = active.spec
        duration = done.finished - done.started
        # A log that could not be written is not on record (audit verify would miss it).
        log, log_hash = (active.log, done.log_hash) if done.log_error is None else (None, None)
        interrupted = self.signals.first is not None
        message = _failure(done, active)
        outputs: Dict[str, Optional[str]] = {}
        if message is None:
            if missing:
                message = "did not produce " + ", ".join(map(self.files.describe_missing, missing))
            else:
                outputs = {o: self.build.hasher.hash(o) for o in spec.outputs}
        record = AttemptRecord(
            run_id=self.run_id, task=spec.name, attempt=active.attempt, status=TaskState.OK.value, reasons=active.reasons,
            command=active.command, started=done.started, finished=done.finished, exit_code=done.exit_code,
            inputs=dict(active.obs.inputs), outputs=outputs, log=log, log_hash=log_hash, message=None,
            waited=self.sensors.waited.get(spec.name) if active.attempt == 1 else None, worker=done.worker or None,
        )
        if message is None and not interrupted:
            trace = self._trace(active, outputs)
            self.build.recorder.attempt(record, trace)
            if trace is not None and self.build.cache is not None:
                self.build.cache.store(spec, active.obs, outputs)
            self.tally.finish(spec.name, TaskState.OK, duration=duration, exit_code=done.exit_code, log=log,
                              attempt=active.attempt)
            self.sched.succeeded(spec.name)
            return None
        message = message or "interrupted"
        self.build.recorder.attempt(record._replace(status=(TaskState.INTERRUPTED if interrupted else TaskState.FAILED).value,
                                                    message=message), None)
        if not interrupted and active.attempt <= spec.retries and not self.sched.stopped:
            self.emit(TaskFinished(self.run_id, time.time(), spec.name, TaskState.FAILED, duration, done.exit_code,
                                   message, log, tuple(done.tail), active.attempt, will_retry=True))
            return (time.monotonic() + spec.retry_delay, active.attempt + 1)
        # Cut short, not broken: an interrupted task is shown as such, without a log tail.
        self._fail(spec.name, exit_code=done.exit_code, message=message, duration=duration, log=log,
                   tail=() if interrupted else tuple(done.tail), attempt=active.attempt,
                   status=TaskState.INTERRUPTED if interrupted else TaskState.FAILED)
        return None

    def _trace(self, active: _Active, outputs: Mapping[str, Optional[str]]) -> Optional[Trace]:
        """What makes the task fresh next time; None when an input was missing as it started (never fresh)."""
        obs = active.obs
        if any(v is None for v in obs.inputs.values()):
            self.untraced = True
            return None
        return Trace(active.spec.name, fingerprint(obs), obs.command_hash, dict(obs.env), dict(obs.inputs),
                     {k: v for k, v in outputs.items() if v is not None}, self.run_id)

    def _unstarted(self, spec: TaskSpec, attempt: int, reasons: Tuple[Reason, ...], command: str, message: str, *,
                   started: float, inputs: Mapping[str, Optional[str]], duration: float = 0.0) -> None:
        """A task that failed without running (a secret missing, a shell not found, files that never came)."""
        self.build.recorder.attempt(AttemptRecord(
            run_id=self.run_id, task=spec.name, attempt=attempt, status=TaskState.FAILED.value, reasons=reasons, command=command,
            started=started, finished=time.time(), exit_code=None, inputs=dict(inputs), outputs={}, log=None,
            log_hash=None, message=message, waited=self.sensors.waited.get(spec.name) if attempt == 1 else None,
        ), None)
        self._fail(spec.name, message=message, duration=duration, attempt=attempt)

    def _fail(self, name: str, *, message: str, attempt: int, exit_code: Optional[int] = None,
              duration: float = 0.0, log: Optional[str] = None, tail: Tuple[str, ...] = (),
              status: TaskState = TaskState.FAILED) -> None:
        """End a task that did not succeed (FAILED or INTERRUPTED) and skip what needs it."""
        self.tally.finish(name, status, duration=duration, exit_code=exit_code, message=message, log=log, tail=tail,
                          attempt=attempt)
        why = f"upstream failed: {name}" if self.signals.first is None else "not started: the run was interrupted"
        for skipped in self.sched.failed(name):
            self.tally.finish(skipped, TaskState.SKIPPED, message=why)


def _failure(done: Completion, active: _Active) -> Optional[str]:
    """Why a completed command failed, from how it ended; None when it exited 0 with its log written."""
    if done.error is not None:
        return done.error
    if done.timed_out:
        return f"timed out (limit {active.spec.timeout or 0:g}s)"
    if done.returncode < 0:
        return f"killed by signal {signal_name(-done.returncode)}"
    if done.returncode != 0:
        return f"exit code {done.returncode}"
    if done.log_error is not None:
        return f"could not write its log {active.log}: {done.log_error}"  # SPEC §3: output goes there
    return None
