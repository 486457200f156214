"""What passes between the loop and an executor: a prepared command going in; output and completions coming out.

Plain records, cheap to import (no `typing` at run time, records.py): any
executor, local or remote, takes a `Command` and answers with these, so the
loop (engine/loop.py) never learns how or where a command ran.
"""

from __future__ import annotations

from typing import List, Mapping, NamedTuple, Optional, Tuple


class Command(NamedTuple):
    """A task's command, ready to start: nothing in it is left to expand."""

    task: str
    shell: Tuple[str, ...]  # the interpreter prefix (`sh -c`); the line is its last argument
    line: str  # the shell line, as the Flowfile expanded it
    cwd: str  # absolute: the project root
    env: Mapping[str, str]  # the whole environment of the task
    log: str  # where its output goes, relative to `cwd`
    secrets: Tuple[str, ...] = ()  # values to mask as *** in the log and the lines reported
    timeout: Optional[float] = None  # seconds, after which the executor kills it
    # The task's declared outputs: an executor whose tasks run where the files
    # are (a cluster's worker) checks and hashes them there (files.py).
    outputs: Tuple[str, ...] = ()
    # What the task needs of the machine it runs on ({"gpu": 1.0, "memory": 8e9}): a cluster routes by it.
    resources: Tuple[Tuple[str, float], ...] = ()

    @property
    def argv(self) -> List[str]:
        return [*self.shell, self.line]


class Placed(NamedTuple):
    """A task's command began on this worker (a cluster's worker address): for live displays.

    Sent by executors whose tasks wait for a place to run; the local one
    says where in each Completion only.
    """

    task: str
    worker: str


class OutputLine(NamedTuple):
    """The latest line a task printed (throttled): for live displays."""

    task: str
    line: str


class OutputLines(NamedTuple):
    """Every line a task printed since the last of these, in order; `omitted` earlier ones left out of a block."""

    task: str
    lines: List[str]
    omitted: int = 0


class Completion(NamedTuple):
    """A task's command is over: how it ended, when, and what its log holds."""

    task: str
    returncode: int  # negative: killed by that signal
    timed_out: bool
    started: float  # wall clock
    finished: float
    tail: List[str]  # its last lines (masked)
    log_hash: str
    log_error: Optional[str]  # why its log could not be written ("No space left on device"), or None
    worker: str = ""  # where it ran: the host name, or a cluster worker's address (the journal records it)
    # Why it ended without an exit of its own ("worker tcp://10.0.0.7:4000 died"): then it failed for that.
    error: Optional[str] = None

    @property
    def exit_code(self) -> Optional[int]:
        """The exit code; None when a signal ended it."""
        return self.returncode if self.returncode >= 0 else None

    @property
    def signal(self) -> Optional[int]:
        """The signal that ended it, if one did."""
        return -self.returncode if self.returncode < 0 else None
