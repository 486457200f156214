"""The shared output cache as the engine sees it (engine/restore.py's `OutputCache`), over flowmake/cache/.

Which tasks may use it (not `cache = false`, not `always`, with outputs,
every input there), their key (plan.fingerprint plus the declared outputs),
and what a run says about it: warnings as notices, the provenance a restored
attempt records for the audit trail, and the run's counts in the cache.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Tuple

from .. import __version__
from ..cache.entry import Produced
from ..cache.key import entry_key
from ..events import Notice
from ..store.identity import current_user, host_name
from .plan import always_runs, fingerprint

if TYPE_CHECKING:  # names for type checkers only
    from ..cache.entry import Entry
    from ..cache.session import CacheSession
    from ..executors.protocol import FileSystem
    from ..model import Observation, TaskSpec
    from ..store.hashing import FileHasher
    from .build import Build


def uses_cache(spec: TaskSpec) -> bool:
    """Whether a task's outputs may be restored from and stored in the cache."""
    return spec.cache and spec.command is not None and bool(spec.outputs) and not always_runs(spec)


class SharedCache:
    def __init__(self, session: CacheSession, *, root: str, project: str) -> None:
        self.session = session
        self.root = root
        self.project = project
        self._hasher: Optional[FileHasher] = None
        self._run_id = ""
        self._pending: List[str] = []  # warnings given before the run could show them
        self._emit: Optional[Callable[[str], None]] = None
        self._who = (host_name(), current_user())  # asked once: current_user may read the password database
        # task -> (the observation its key was made of, the key): a task that is looked up, runs and is
        # stored has the same observation both times (two hashes fewer per task).
        self._keys: Dict[str, Tuple[object, Optional[str]]] = {}
        session.warn = self._warn

    def begin(self, build: Build) -> None:
        """The run this cache serves: its id, its hasher (restored outputs are hashed by it) and its events."""
        self._hasher = build.hasher
        self._run_id = build.run_id
        self._emit = lambda message: build.emit(Notice(build.run_id, time.time(), message))
        for message in self._pending:
            self._emit(message)
        self._pending.clear()

    def _warn(self, message: str) -> None:
        if self._emit is None:
            self._pending.append(message)
        else:
            self._emit(message)

    def key(self, spec: TaskSpec, obs: Observation) -> Optional[str]:
        known = self._keys.get(spec.name)
        if known is not None and known[0] is obs:
            return known[1]
        if not uses_cache(spec) or any(h is None for h in obs.inputs.values()):
            key = None
        else:
            key = entry_key(fingerprint(obs), spec.outputs)
        self._keys[spec.name] = (obs, key)
        return key

    def lookup(self, spec: TaskSpec, obs: Observation) -> Optional[Entry]:
        key = self.key(spec, obs)
        if key is None:
            return None
        entry = self.session.lookup(key, spec.name)
        if entry is not None and set(entry.outputs) != set(spec.outputs):
            return None  # not this task's outputs (the key says they are: a damaged entry)
        return entry

    def restore(self, spec: TaskSpec, entry: object, files: FileSystem) -> Optional[Mapping[str, str]]:
        """Outputs in place, each file checked against the entry; their hashes as the run's hasher reads them."""
        assert self._hasher is not None, "begin the run first"
        got: Entry = entry  # type: ignore[assignment]
        if not self.session.restore(got, self.root, spec.name):
            return None
        hashes: Dict[str, str] = {}
        for output in spec.outputs:
            digest = self._hasher.hash(output)
            if digest != got.outputs.get(output):  # changed under us since it was renamed into place
                self._warn(f"{output}, restored for {spec.name}, changed as it was put in place; the task runs")
                return None
            hashes[output] = digest
        return hashes

    def provenance(self, entry: object) -> Dict[str, object]:
        """What the audit trail records of a restore: the entry, and the run and host that produced it."""
        got: Entry = entry  # type: ignore[assignment]
        p = got.produced
        return {"cache": self.session.url, "entry": got.key, "run": p.run, "host": p.host, "user": p.user,
                "at": p.at, "task": p.task, "project": p.project, "version": p.version}

    def store(self, spec: TaskSpec, obs: Observation, outputs: Mapping[str, Optional[str]]) -> None:
        """After a successful run of the task: keep its outputs under its key."""
        if not self.session.writes:
            return
        key = self.key(spec, obs)
        if key is None or self._hasher is None:
            return
        produced = Produced(self._run_id, *self._who, time.time(), spec.name, self.project, __version__)
        self.session.store(key, self.root, outputs, self._hasher.hash, produced, wait=False)

    def finish(self) -> None:
        self.session.finish(self._run_id, host=self._who[0], project=self.project)
