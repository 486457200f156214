"""`flowmake watch`: run the targets again whenever one of their source files or the Flowfile changes.

Which changes count is `WatchSet.relevant`, pure: an input of a selected
task that no task produces (a source file), the Flowfile and the files it
includes, and a file created in or deleted from a directory that holds such
an input (what a glob would pick up). flowmake's own writes never count: not
`.flowmake/`, not any task's declared output, so a run does not start the
next one. File events come from watchfiles (the `watch` extra), in a thread
started before the first run, so a change made while a run is in progress
is kept and starts the next run as soon as that one has finished.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Callable, FrozenSet, Iterable, List, NamedTuple, Optional, Set, Tuple

from ..engine.graph import Graph
from ..model import Flowfile

STATE_DIR_PREFIX = ".flowmake/"


class WatchSet(NamedTuple):
    root: str
    files: FrozenSet[str]  # project-relative: source inputs, the Flowfile, its includes
    dirs: FrozenSet[str]  # directories holding source inputs ("" is the root)
    outputs: FrozenSet[str]  # declared outputs; directory outputs end in "/"

    def relevant(self, created_or_deleted: bool, path: str) -> bool:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        if rel.startswith("../") or rel == ".flowmake" or rel.startswith(STATE_DIR_PREFIX):
            return False
        if rel in self.outputs or any(rel.startswith(d) for d in self.outputs if d.endswith("/")):
            return False
        if rel in self.files:
            return True
        parent = rel.rpartition("/")[0]
        return created_or_deleted and parent in self.dirs


def watch_set(flowfile: Flowfile, graph: Graph, selection: Iterable[str]) -> WatchSet:
    """What to watch for these tasks (see the module's doc)."""
    outputs = {o for spec in flowfile.tasks.values() for o in spec.outputs}
    sources: Set[str] = set()
    for name in selection:
        for path in flowfile.tasks[name].inputs:
            if graph.producer_of(path) is None:
                sources.add(path)
    files = sources | {os.path.relpath(flowfile.path, flowfile.root).replace(os.sep, "/"), *flowfile.includes}
    dirs = {p.rpartition("/")[0] for p in sources}
    return WatchSet(str(flowfile.root), frozenset(files), frozenset(dirs), frozenset(outputs))


def flowfile_only(path: str, root: str) -> WatchSet:
    """Before the Flowfile loads (or after an edit broke it): wait for it to change."""
    return WatchSet(root, frozenset({os.path.relpath(path, root).replace(os.sep, "/")}), frozenset(), frozenset())


class Changes:
    """File events in a thread of their own, filtered through the current WatchSet, queued for the loop."""

    def __init__(self, root: str, *, debounce_ms: int) -> None:
        self.current: Optional[WatchSet] = None
        self.stop = threading.Event()
        self._queue: "queue.Queue[Set[str]]" = queue.Queue()
        self._root = root
        self._debounce = debounce_ms
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="flowmake-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=10)

    def _keep(self, change: object, path: str) -> bool:
        from watchfiles import Change

        ws = self.current
        return ws is not None and ws.relevant(change in (Change.added, Change.deleted), path)

    def _watch(self) -> None:
        from watchfiles import watch

        self._ready.set()
        for batch in watch(self._root, watch_filter=self._keep, debounce=self._debounce, stop_event=self.stop,
                           raise_interrupt=False, yield_on_timeout=False):
            self._queue.put({path for _change, path in batch})

    def next(self, *, stopped: Callable[[], bool]) -> Optional[List[str]]:
        """The changed paths (project-relative, sorted): those queued, else the next batch; None once stopped."""
        found: Set[str] = set()
        while not found:
            if stopped():
                return None
            try:
                found |= self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
        while True:  # and whatever else came meanwhile: one run for all of it
            try:
                found |= self._queue.get_nowait()
            except queue.Empty:
                break
        return sorted(os.path.relpath(p, self._root).replace(os.sep, "/") for p in found)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)


def summary(code: int, seconds: float, watched: WatchSet) -> str:
    result = {0: "success", 1: "failed", 2: "not run (see the error above)", 3: "not run: the project is locked"}
    return (f"watch: {result.get(code, f'exit {code}')} in {seconds:.1f}s; watching {len(watched.files)} "
            f"file{'s' if len(watched.files) != 1 else ''} for changes (Ctrl-C stops)")


def changed_line(paths: List[str]) -> str:
    shown = ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
    return f"watch: changed: {shown}"


def watch_loop(*, load: Callable[[], Tuple[WatchSet, Callable[[], int]]], changes: Changes,
               say: Callable[[str], None], clock: Callable[[], float], stopped: Callable[[], bool]) -> int:
    """Run, then wait for a relevant change, then run again; the exit code of an interrupted run, else 0.

    `load` reads the Flowfile afresh and returns what to watch and the function that runs the targets.
    """
    from .scheduler import INTERRUPTED

    while True:
        watched, run = load()
        changes.current = watched
        started = clock()
        code = run()
        if code in INTERRUPTED:
            say(f"watch: {INTERRUPTED[code]}: the run was interrupted as Ctrl-C would; stopping")
            return code
        say(summary(code, clock() - started, watched))
        paths = changes.next(stopped=stopped)
        if paths is None:
            say("watch: stopped")
            return 0
        say(changed_line(paths))
