"""The run's record: the journal entries, the traces, the hash cache, the no-op snapshot and the alerts.

The loop and the no-op fast path end a run through a `Recorder`, so both
record it the same way: its start, each attempt (with the trace that makes
its task fresh next time), its end, and the hooks. Cheap to import: the
fast path imports it, and the hooks only when a Flowfile has some.

Attempt records of quick successful tasks are committed in batches: a
commit per task cost about a quarter of a millisecond of CPU per task, and
batches of 32 still ~70 us per task of SQLite's time (docs/state.md). A kill
before the commit only means the task is not recorded, so it runs again.
"""

from __future__ import annotations

import os
import time

from ..events import RunResult, TaskState
from ..layout import STATE_DIR, run_log_dir
from ..records import TYPE_CHECKING
from . import snapshot as snapshots

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

    from ..events import TaskFinished
    from ..model import AttemptRecord, Hooks, RunRecord, Trace
    from ..store.hashing import StatEntry
    from ..store.state import State

_NEVER = float("inf")
MAX_UNRECORDED = 256  # attempts committed together at most
RECORD_DELAY = 0.25  # seconds a quick task's record may wait for others
QUICK_TASK = 1.0  # seconds: a task that took longer is committed at once, so a kill cannot lose much work


class Recorder:
    def __init__(self, state: State, run_id: str, *, root: str | Path, flow_name: str, hooks: Hooks,
                 shell: Sequence[str], environ: Mapping[str, str],
                 unsaved: Callable[[], Mapping[str, StatEntry]] = dict,
                 settle: Callable[[], object] = tuple,
                 secret_names: Callable[[], Iterable[str]] = tuple) -> None:
        """`unsaved`: the stat-cache entries learnt since it was last asked, saved with each commit;
        `settle`: hashes once more what was racy when hashed (FileHasher.settle), before the last save;
        `secret_names`: the tasks' secrets, whose values the hooks' logs mask (asked only when hooks fire)."""
        self.state = state
        self.run_id = run_id
        self._root = root
        self._flow_name = flow_name
        self._hooks = hooks
        self._shell = tuple(shell)
        self._environ = environ
        self._unsaved = unsaved
        self._settle = settle
        self._secret_names = secret_names
        self.begun = False  # the run is in the journal
        self.started = 0.0
        self._pending: List[Tuple[AttemptRecord, Optional[Trace]]] = []  # finished, not yet committed
        self._due = _NEVER  # monotonic time by which they are committed

    # -- a dead run's leftovers ------------------------------------------------

    def end_orphans(self, end: Callable[[Sequence[str]], List[str]]) -> Optional[str]:
        """End the tasks killed runs left running (`end`: the executor's end_orphans); what to tell the user."""
        dead = self.state.unfinished_runs()
        if not dead:
            return None
        ended = end(dead)
        self.state.forget_runs(dead)  # ended: no later run need look for them again
        if not ended:
            return None
        names = ", ".join(sorted(set(ended)))
        return f"ended {len(ended)} task process group(s) left running by a killed run ({names})"

    # -- the journal -----------------------------------------------------------

    def begin(self, run: RunRecord, *, starts_tasks: bool = True) -> None:
        """The run's start record; `starts_tasks`: it may run tasks (the fast path's no-op runs none)."""
        if starts_tasks:
            snapshots.remove(os.path.join(self._root, STATE_DIR))  # this run may change what it proved
        self.state.begin_run(run, starts_tasks=starts_tasks)
        self.begun = True
        self.started = run.started

    def attempt(self, record: AttemptRecord, trace: Optional[Trace]) -> None:
        """A finished attempt: committed at once for a failure or a task that took QUICK_TASK or longer,
        else together with others within RECORD_DELAY (`due_in`, `commit`)."""
        self._pending.append((record, trace))
        quick = record.status == TaskState.OK.value and record.finished - record.started < QUICK_TASK
        self._due = min(self._due, time.monotonic() + (RECORD_DELAY if quick else 0.0))

    def due_in(self) -> Optional[float]:
        """Seconds until the pending attempts must be committed (0: now); None when none is pending."""
        if not self._pending:
            return None
        if len(self._pending) >= MAX_UNRECORDED:
            return 0.0
        return max(0.0, self._due - time.monotonic())

    def commit(self) -> None:
        if self._pending:
            finished, self._pending = self._pending, []
            self._due = _NEVER
            self.state.record_attempts(finished, self._unsaved())

    def finish(self, result: RunResult, finished: float, *, counts: Mapping[str, int],
               failures: Sequence[TaskFinished] = (), skipped: Optional[Mapping[str, str]] = None) -> List[str]:
        """The run's end record and its alerts; warnings about those that failed.

        Nothing for a run never begun (interrupted while planning): only a
        recorded run gets an end record and alerts.
        """
        if not self.begun:
            return []
        self.commit()
        self._settle()  # the outputs hashed in their own tick: trusted now, not re-read next run
        self.state.save_stat_entries(self._unsaved())
        self.state.finish_run(self.run_id, finished=finished, result=result.value,
                              skipped=None if result is RunResult.SUCCESS else skipped)
        return self._fire_hooks(result, finished, counts, failures)

    def _fire_hooks(self, result: RunResult, finished: float, counts: Mapping[str, int],
                    failures: Sequence[TaskFinished]) -> List[str]:
        hooks = self._hooks
        success = result is RunResult.SUCCESS
        if not ((hooks.on_success if success else hooks.on_failure) or (hooks.webhook and not success)):
            return []  # none due (the webhook is for failures): not worth the hooks' imports
        from pathlib import Path  # only here: the no-op path does without pathlib

        from .hooks import RunSummary, fire

        summary = RunSummary(self.run_id, self._flow_name, result, self.started, finished, dict(counts),
                             tuple(failures), run_log_dir(self.run_id))
        return fire(hooks, summary, root=Path(self._root), shell=self._shell, environ=self._environ,
                    secret_names=self._secret_names())

    def leave_snapshot(self, **proof: Any) -> None:
        """Every task is fresh now: leave the no-op proof for the next run (proof.leave_snapshot)."""
        from .proof import leave_snapshot

        leave_snapshot(state_identity=self.state.identity, environ=self._environ, **proof)
