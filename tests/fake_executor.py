"""A scripted executor for tests of the loop: no process, a virtual clock.

Each task's attempts are scripted as `Outcome`s (exit code, how long it
takes, the files it writes, the lines it prints). `wait` advances a virtual
clock to the next scripted end and completes that task, so a test sees the
order of starts, how many ran at once and what the loop made of each end,
deterministically and in milliseconds (Ninja's build_test.cc does the same
with its FakeCommandRunner). Files are real, under the test's tmp_path,
through the local file-system seam: that is the executor's business.
"""

from __future__ import annotations

import heapq
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from flowmake.executors.files import LocalFiles
from flowmake.executors.messages import Command, Completion, OutputLine, OutputLines


@dataclass(frozen=True)
class Outcome:
    """One scripted attempt of a task."""

    exit: int = 0  # negative: killed by that signal
    takes: float = 1.0  # virtual seconds
    # Project-relative path -> text; None: each declared output, holding the task's name.
    writes: Optional[Mapping[str, str]] = None
    lines: Tuple[str, ...] = ()
    timed_out: bool = False
    cannot_start: Optional[str] = None  # an OSError's text: start fails
    on_start: Optional[Callable[[], None]] = None  # e.g. deliver a signal to the run


OK = Outcome()


class FakeExecutor:
    runs_commands = True

    def __init__(self, root: Path, script: Optional[Mapping[str, Sequence[Outcome]]] = None, *,
                 outputs: Mapping[str, Sequence[str]], default: Outcome = OK) -> None:
        """`outputs`: each task's declared outputs, which an outcome writes unless it says otherwise."""
        self.files = LocalFiles(root)
        self.outputs = outputs
        self.root = root
        self.script = {task: list(outcomes) for task, outcomes in (script or {}).items()}
        self.default = default
        self.now = 1_000_000.0  # virtual wall clock
        self.started: List[str] = []  # tasks in the order they started (a retry appears again)
        self.commands: List[Command] = []
        self.most_at_once = 0
        self.cancelled: List[bool] = []  # at_once of each cancel
        self.orphan_runs: List[Sequence[str]] = []
        self.closed = False
        self._running: Dict[str, Tuple[float, int, Outcome, float]] = {}  # task -> (ends, seq, outcome, started)
        self._ends: List[Tuple[float, int, str]] = []
        self._seq = 0

    def outcome_of(self, task: str) -> Outcome:
        outcomes = self.script.get(task)
        return outcomes.pop(0) if outcomes else self.default

    def slots(self) -> int:
        return 2

    def start(self, command: Command) -> None:
        outcome = self.outcome_of(command.task)
        if outcome.cannot_start is not None:
            raise OSError(2, outcome.cannot_start)
        assert command.task not in self._running, f"{command.task} started twice at once"
        self.started.append(command.task)
        self.commands.append(command)
        self._push(command.task, self.now + outcome.takes, outcome, self.now)
        self.most_at_once = max(self.most_at_once, len(self._running))
        if outcome.on_start is not None:
            outcome.on_start()

    def wait(self, timeout: Optional[float]) -> List[object]:
        """The next scripted end, at once: the virtual clock moves to it."""
        while self._ends and self._running.get(self._ends[0][2], (0, None))[1] != self._ends[0][1]:
            heapq.heappop(self._ends)  # superseded (cancelled since)
        if not self._ends:
            if timeout:
                self.now += timeout
            return []
        ends, _, task = heapq.heappop(self._ends)
        self.now = max(self.now, ends)
        _, _, outcome, started = self._running.pop(task)
        writes = outcome.writes
        if writes is None:
            writes = {rel: f"{task}\n" for rel in self.outputs.get(task, ()) if not rel.endswith("/")}
        for rel, text in writes.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        messages: List[object] = []
        if outcome.lines:
            messages.append(OutputLine(task, outcome.lines[-1]))
            messages.append(OutputLines(task, list(outcome.lines)))
        messages.append(Completion(task, outcome.exit, outcome.timed_out, started, self.now,
                                   list(outcome.lines[-20:]), "logged", None))
        return messages

    def wake(self) -> None:
        pass

    def cancel(self, *, at_once: bool) -> None:
        """Every running task ends now, killed by the signal, without writing what it was scripted to."""
        self.cancelled.append(at_once)
        killed = Outcome(exit=-int(signal.SIGKILL if at_once else signal.SIGTERM), takes=0.0, writes={})
        for task, (_, _, _, started) in list(self._running.items()):
            self._push(task, self.now, killed, started)

    def _push(self, task: str, ends: float, outcome: Outcome, started: float) -> None:
        self._seq += 1
        self._running[task] = (ends, self._seq, outcome, started)
        heapq.heappush(self._ends, (ends, self._seq, task))

    def end_orphans(self, run_ids: Sequence[str]) -> List[str]:
        self.orphan_runs.append(list(run_ids))
        return []

    def close(self) -> None:
        self.closed = True
