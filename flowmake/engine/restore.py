"""The seam for a shared cache of outputs (issue 19): where the rebuilder's `Restore` goes.

The rebuilder (plan.decide) says `Restore(entry, reasons)` when a task is
stale and the cache, asked by whoever observed the task (the preview, the
loop's second call), holds an entry for its very fingerprint. The loop
hands that entry back to the cache to put the outputs in place; if that
fails the task simply runs. The run records a restored task like a
success (its trace, so it is fresh next time; an attempt with status
"restored") and finishes it as `RESTORED`. A cache is one object matching
`OutputCache`, handed to `Build`; the loop needs no change for it.

Like executors/protocol.py, for type checkers and readers only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional, Protocol

from ..executors.protocol import FileSystem
from ..model import Observation, TaskSpec

if TYPE_CHECKING:
    from .build import Build


class OutputCache(Protocol):
    def begin(self, build: Build) -> None:
        """The run it serves (engine/build.py): its id, its hasher and its events."""

    def finish(self) -> None:
        """The loop is over: finish what is under way (stores), within the cache's deadlines."""

    def lookup(self, spec: TaskSpec, obs: Observation) -> Optional[object]:
        """The entry holding this task's outputs for what `obs` observed (its fingerprint), or None.

        Asked only of a task that would run; the entry is the cache's own
        object, passed back to `restore` untouched.
        """

    def restore(self, spec: TaskSpec, entry: object, files: FileSystem) -> Optional[Mapping[str, str]]:
        """Put the entry's outputs in place through `files`; their content hashes (output -> hash),
        or None when it could not (the task then runs)."""

    def provenance(self, entry: object) -> Mapping[str, object]:
        """What the restored attempt records of where its outputs came from (AttemptRecord.restored)."""

    def store(self, spec: TaskSpec, obs: Observation, outputs: Mapping[str, Optional[str]]) -> None:
        """The task ran and succeeded on what `obs` observed: keep its outputs for the next lookup."""
