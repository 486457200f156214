"""The seam between the loop and wherever commands run: what an executor must do.

The loop (engine/loop.py) holds an `Executor` and knows nothing else about
processes, hosts or clusters. An executor is one module in this package:
`local` (processes on this machine), `dry` (`run -n`: runs nothing); a Dask
or Slurm executor would be a third, needing no change to the loop. Tests of
the loop use a scripted one (tests/fake_executor.py).

This module is for type checkers, tests and readers: the engine imports it
only under TYPE_CHECKING, since `typing` costs every run milliseconds
(records.py). Executors match it by shape; they need not inherit from it.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Protocol, Sequence, Tuple, Union

from ..store.hashing import FileHasher, StatEntry
from .messages import Command, Completion, OutputLine, OutputLines, Placed

Message = Union[Placed, OutputLine, OutputLines, Completion]


class FileSystem(Protocol):
    """The project's files where the tasks see them (the coordinator's disk, or a shared one).

    Everything the loop does to outputs goes through here: making their
    folders, checking they exist, hashing them.
    """

    def hasher(self, stat_cache: Mapping[str, StatEntry]) -> FileHasher:
        """The content hasher of the project's files, over the state's stat cache."""

    def make_parents(self, outputs: Sequence[str]) -> None:
        """Create the parent folders of these project-relative outputs (SPEC §1)."""

    def missing(self, outputs: Sequence[str]) -> List[str]:
        """Those of the outputs that are not there as what they are declared (a file, or a `dir/`)."""

    def describe_missing(self, output: str) -> str:
        """A missing output as a failure names it (saying so when it is there as the other kind)."""

    def stat_pair(self, path: str) -> Optional[Tuple[int, int]]:
        """(size, mtime_ns) of a path, None when it is absent: what a `wait_for` sensor polls."""


class Executor(Protocol):
    files: FileSystem
    # False for an executor that only plans (the dry run): the run shows its
    # plan and ends before the loop.
    runs_commands: bool

    def slots(self) -> int:
        """How many commands it can run at once now (a cluster's worker threads, as workers come and go).

        The loop asks when the run was given no `-j` of its own (jobs 0): it
        then follows this number from one start to the next.
        """

    def start(self, command: Command) -> None:
        """Start it now; raise OSError when it cannot start (the task fails with that message)."""

    def wait(self, timeout: Optional[float]) -> List[Message]:
        """Move output until something happens or `timeout` seconds pass (None: no limit).

        The loop's only wake-up: output lines and completions in the order
        they came; an empty list after the timeout or a `wake`. After a task's
        Completion nothing more comes for it.
        """

    def wake(self) -> None:
        """Make a `wait` in progress return now; safe to call from a signal handler."""

    def cancel(self, *, at_once: bool) -> None:
        """Stop every running command: gracefully (SIGTERM), or `at_once` (SIGKILL).

        Their completions still come through `wait`.
        """

    def end_orphans(self, run_ids: Sequence[str]) -> List[str]:
        """End what is still running of these dead (killed) runs' tasks: the task of each thing ended.

        Called before any task of this run starts, so that no leftover can
        overwrite an output after this run recorded it (SPEC §3).
        """

    def close(self) -> None:
        """The run is over: let go of what the executor holds."""
