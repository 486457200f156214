"""The Dask executor: each task's command a future on a Dask distributed cluster, as executors/protocol.py has it.

The coordinator (flowmake's one thread) submits a future per started task
(remote.run_task, with the task's `resources` as Dask resources) and
sleeps in `wait` on a pipe that the client's own thread writes to when a
future finishes or a worker posts to the run's event topic (the task was
placed on a worker; its latest line; the lines the output mode prints).
So output streams into the live view while the task runs, through the
scheduler that already connects everything, and the log itself is written
by the worker on the shared file system: the file `flowmake log` reads is
the one the command wrote to.

About once a second `wait` also looks at the cluster: the worker threads
there (the run's `-j` when none was given), the workers that went away
(each task placed on one fails, "worker ... died", and may be retried),
and the scheduler itself (gone: every running task fails, and so does each
start after it, so the run ends with that message).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import time
from pathlib import Path
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from ...store.hashing import FileHasher, StatEntry
from ..files import LocalFiles
from ..messages import Command, Completion, OutputLine, OutputLines, Placed
from . import cluster as clusters
from . import remote

# The log_error of an attempt that gave no result: whatever its worker wrote of its log is not on record.
NO_LOG = "no result came back from its worker"
CHECK_EVERY = 1.0  # seconds between looks at the cluster's workers and the scheduler's connection
# How each output mode (model.OUTPUT_MODES) needs the lines handed over (as executors/local.py).
_LINE_DELIVERY = {"prefixed": "stream", "interleaved": "stream", "group": "block"}


class DaskFiles(LocalFiles):
    """The project's files on the shared file system, with what the workers found of the outputs they wrote.

    A worker reports, for each task, which outputs were missing and the
    stat entries of those it hashed; the coordinator then only stats them
    (FileHasher.adopt), never reading an output the worker read already.
    """

    __slots__ = ("_hasher", "_missing", "_described")

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._hasher: Optional[FileHasher] = None
        self._missing: Dict[str, bool] = {}  # output -> missing, as the worker that wrote it found it
        self._described: Dict[str, str] = {}

    def hasher(self, stat_cache: Mapping[str, StatEntry]) -> FileHasher:
        self._hasher = FileHasher(self.root, stat_cache)
        return self._hasher

    def adopt(self, outputs: Sequence[str], result: Mapping[str, Any]) -> None:
        """What the worker found of a task's outputs (remote._outputs)."""
        missing = set(result.get("missing", ()))
        for output in outputs:
            self._missing[output] = output in missing
        self._described.update(result.get("described", {}))
        entries = result.get("entries")
        if entries and self._hasher is not None:
            self._hasher.adopt({path: StatEntry(*entry) for path, entry in entries.items()})

    def missing(self, outputs: Sequence[str]) -> List[str]:
        unknown = [o for o in outputs if o not in self._missing]
        gone = set(super().missing(unknown)) if unknown else set()
        return [o for o in outputs if self._missing.pop(o, o in gone)]

    def describe_missing(self, output: str) -> str:
        return self._described.pop(output, None) or super().describe_missing(output)


class _Submitted:
    __slots__ = ("command", "future", "key", "worker", "submitted")

    def __init__(self, command: Command, future: Any, key: str) -> None:
        self.command = command
        self.future = future
        self.key = key
        self.submitted = time.time()
        self.worker: Optional[str] = None  # where it was placed, once its worker said


class DaskExecutor:
    runs_commands = True

    def __init__(self, root: Path, *, address: Optional[str], output: str = "latest") -> None:
        """`address`: the scheduler's (tcp://HOST:PORT); None starts a local cluster of processes."""
        self.files = DaskFiles(root)
        self.root = root
        self._lines = _LINE_DELIVERY.get(output)
        self._latest = output != "none"
        self.client, self._cluster = clusters.connect(address, root=root)
        self.address = self.client.scheduler.address
        _send_promptly(self.client)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._inbox: Deque[Tuple[str, Any]] = collections.deque()  # filled by the client's thread
        self._running: Dict[str, _Submitted] = {}  # task -> its future
        self._by_key: Dict[str, str] = {}
        self._ready: List[Any] = []  # messages due without the cluster (a start refused, a cancel)
        self._topic: Optional[str] = None
        self._run_id: Optional[str] = None
        self._gone: Optional[str] = None  # why the scheduler is unusable, once it is
        self._workers: Dict[str, Mapping[str, Any]] = {}
        self._checked = 0.0
        self._closed = False
        self._check_cluster()

    # -- the protocol ----------------------------------------------------------

    def slots(self) -> int:
        return sum(int(w.get("nthreads", 1)) for w in self._workers.values())

    def start(self, command: Command) -> None:
        if self._topic is None:
            self._run_id = command.env.get("FLOWMAKE_RUN_ID", "run")
            self._topic = f"flowmake-{self._run_id}"
            self.client.subscribe_topic(self._topic, self._on_event)
        refusal = self._gone or self._no_worker_for(command.resources)
        if refusal is not None:
            self._finish_now(command, refusal)
            return
        spec = {
            "argv": command.argv, "cwd": command.cwd, "env": dict(command.env), "log": command.log,
            "secrets": list(command.secrets), "timeout": command.timeout, "outputs": list(command.outputs),
            "lines": self._lines, "latest": self._latest, "topic": self._topic, "run_id": self._run_id,
            "task": command.task,
        }
        key = f"flowmake-{self._run_id}-{command.log.rsplit('/', 1)[-1]}"
        future = self.client.submit(remote.run_task, spec, key=key, pure=False, retries=0,
                                    resources=dict(command.resources) or None)
        self._running[command.task] = _Submitted(command, future, key)
        self._by_key[key] = command.task
        future.add_done_callback(lambda f, key=key: self._notify(("done", key)))

    def wait(self, timeout: Optional[float]) -> List[Any]:
        if not self._ready and not self._inbox:
            due = CHECK_EVERY - (time.monotonic() - self._checked)
            limit = max(0.0, due if timeout is None else min(timeout, due))
            select.select([self._wake_r], [], [], limit)
        self._drain_wake_pipe()
        messages, self._ready = self._ready, []
        while self._inbox:
            what, data = self._inbox.popleft()
            messages.extend(self._event(data) if what == "event" else self._done(data))
        if time.monotonic() - self._checked >= CHECK_EVERY:
            messages.extend(self._check_cluster())
        return messages

    def wake(self) -> None:
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b".")
        except BlockingIOError:
            pass

    def cancel(self, *, at_once: bool) -> None:
        """SIGTERM (or SIGKILL) to each running command's process group; queued tasks are cancelled now."""
        sig = signal.SIGKILL if at_once else signal.SIGTERM
        if self._run_id is not None and self._gone is None:
            try:
                self.client.run(remote.signal_run, self._run_id, int(sig), on_error="return")
            except Exception:  # noqa: BLE001 - the scheduler may be gone; the futures go below
                pass
        for task, sub in list(self._running.items()):
            if at_once or sub.worker is None:
                # Not started (or killed now): its future is cancelled, and a worker
                # that had just begun it sees that and ends the command itself.
                self._forget(task)
                self.client.cancel([sub.future], force=True)
                self._ready.append(_failed(sub.command, sub.submitted, -int(sig), worker=sub.worker))
        self.wake()

    def end_orphans(self, run_ids: Sequence[str]) -> List[str]:
        if not run_ids:
            return []
        answers = self.client.run(remote.end_run_orphans, list(run_ids), on_error="return")
        return [task for found in answers.values() if isinstance(found, list) for task in found]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        futures = [sub.future for sub in self._running.values()]
        self._running.clear()
        try:
            if futures:
                self.client.cancel(futures, force=True)
            if self._topic is not None:
                self.client.unsubscribe_topic(self._topic)
        except Exception:  # noqa: BLE001 - the scheduler may be gone
            pass
        clusters.close(self.client, self._cluster)
        wake_fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in wake_fds:
            os.close(fd)

    # -- from the client's thread -----------------------------------------------

    def _notify(self, item: Tuple[str, Any]) -> None:
        self._inbox.append(item)
        self.wake()

    def _on_event(self, event: Tuple[float, Any]) -> None:
        self._notify(("event", event[1]))

    # -- on the coordinator's thread ----------------------------------------------

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _event(self, msg: Mapping[str, Any]) -> List[Any]:
        task = msg.get("task")
        sub = self._running.get(task)  # type: ignore[arg-type]
        if sub is None:
            return []  # a late post of a task already ended
        if "result" in msg:
            if msg.get("key") != sub.key:
                return []  # an earlier attempt's
            self._forget(sub.command.task)
            return self._completed(sub, msg["result"])
        out: List[Any] = []
        if "placed" in msg:
            sub.worker = msg["placed"]
            out.append(Placed(sub.command.task, sub.worker))
        if "latest" in msg and self._latest:
            out.append(OutputLine(sub.command.task, msg["latest"]))
        if msg.get("lines"):
            out.append(OutputLines(sub.command.task, list(msg["lines"]), msg.get("omitted", 0)))
        return out

    def _done(self, key: str) -> List[Any]:
        task = self._by_key.get(key)
        sub = self._running.get(task) if task is not None else None
        if sub is None or sub.key != key:
            return []  # ended already (a worker's death noticed first, a cancel)
        self._forget(sub.command.task)
        future = sub.future
        if future.status == "finished":
            try:
                result = future.result(timeout=clusters.CONNECT_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - lost on the way: the scheduler or worker went
                return [_failed(sub.command, sub.submitted, -1, worker=sub.worker, error=self._lost(sub, exc))]
            return self._completed(sub, result)
        if future.status == "cancelled":
            # Not by this executor (it forgets what it cancels): the client cancels every
            # future when it loses the scheduler, having marked itself reconnecting first.
            if self._gone is None and self.client.status != "running":
                self._gone = self._scheduler_gone_text()
            return [_failed(sub.command, sub.submitted, -int(signal.SIGKILL), worker=sub.worker,
                            error=self._gone or f"its Dask future was cancelled ({sub.worker or 'not started'})")]
        try:
            exc = future.exception(timeout=clusters.CONNECT_TIMEOUT)
        except Exception as lost:  # noqa: BLE001
            exc = lost
        return [_failed(sub.command, sub.submitted, -1, worker=sub.worker, error=self._lost(sub, exc))]

    def _completed(self, sub: _Submitted, result: Mapping[str, Any]) -> List[Any]:
        command = sub.command
        worker = result.get("worker") or sub.worker or ""
        if result.get("lost"):
            died = sub.worker or "that ran it"
            return [_failed(command, sub.submitted, -1, worker=sub.worker, error=f"worker {died} died while running it")]
        if "start_error" in result:
            return [_failed(command, sub.submitted, -1, worker=worker,
                            error=f"could not start {command.shell[0]!r} on {worker}: {result['start_error']}")]
        out: List[Any] = []
        if result.get("lines"):
            out.append(OutputLines(command.task, list(result["lines"]), result.get("omitted", 0)))
        if result["returncode"] == 0 and not result["timed_out"]:
            self.files.adopt(command.outputs, result)
        out.append(Completion(command.task, result["returncode"], result["timed_out"], result["started"],
                              result["finished"], list(result["tail"]), result["log_hash"], result["log_error"],
                              worker))
        return out

    def _lost(self, sub: _Submitted, exc: BaseException) -> str:
        """Why a future ended in an error rather than a result: its worker died, the scheduler went, or the text."""
        if self._gone is not None:
            return self._gone
        name = type(exc).__name__
        if name == "KilledWorker" or sub.worker is not None and sub.worker not in self._workers:
            return f"worker {sub.worker or '(unknown)'} died while running it"
        return f"Dask could not run it: {name}: {exc}"

    def _forget(self, task: str) -> None:
        sub = self._running.pop(task, None)
        if sub is not None:
            self._by_key.pop(sub.key, None)

    def _finish_now(self, command: Command, why: str) -> None:
        self._ready.append(_failed(command, time.time(), -1, error=why))
        self.wake()

    def _no_worker_for(self, resources: Sequence[Tuple[str, float]]) -> Optional[str]:
        """Why no worker can take a task needing these resources now, or None (a Dask task would wait forever)."""
        for name, amount in resources:
            if not any(float(w.get("resources", {}).get(name, 0)) >= amount for w in self._workers.values()):
                return (f"no Dask worker has resource {name}={amount:g} (start one with "
                        f"`dask worker ADDRESS --resources {name}={amount:g}`)")
        return None

    def _check_cluster(self) -> List[Any]:
        """The workers now (slots, deaths) and the scheduler's connection; completions of what they took with them."""
        self._checked = time.monotonic()
        if self._gone is not None:
            return []
        if self.client.status != "running":
            return self._scheduler_gone()
        try:
            self._workers = dict(self.client.scheduler_info(n_workers=-1)["workers"])
        except Exception:  # noqa: BLE001 - the connection broke under the call
            return self._scheduler_gone()
        out: List[Any] = []
        for task, sub in list(self._running.items()):
            if sub.worker is not None and sub.worker not in self._workers:
                self._forget(task)
                self.client.cancel([sub.future], force=True)  # Dask would run it again elsewhere: the loop decides
                out.append(_failed(sub.command, sub.submitted, -1, worker=sub.worker, error=f"worker {sub.worker} died"))
        return out

    def _scheduler_gone_text(self) -> str:
        return f"the Dask scheduler at {self.address} went away (connection lost)"

    def _scheduler_gone(self) -> List[Any]:
        self._gone = self._scheduler_gone_text()
        self._workers = {}
        out = [_failed(sub.command, sub.submitted, -1, worker=sub.worker, error=self._gone) for sub in self._running.values()]
        self._running.clear()
        self._by_key.clear()
        return out


def _send_promptly(client: Any) -> None:
    """Let the client send to the scheduler every 2 ms (as workers do) rather than every 10.

    A run hands the scheduler one task per freed slot, one at a time: with
    Dask's client default, a task that ends just after a send waits up to
    10 ms for the next one to be submitted, which was most of what a trivial
    task cost on the cluster (benchmarks/scaleout.py). Left as is where a
    version of distributed has no such attribute.
    """
    comm = getattr(client, "scheduler_comm", None)
    if comm is not None and hasattr(comm, "interval"):
        comm.interval = 0.002


def _failed(command: Command, started: float, returncode: int, *, worker: Optional[str] = None,
            error: Optional[str] = None) -> Completion:
    """The completion of a task that ended without a result from its worker: no log on record, its tail unknown."""
    return Completion(command.task, returncode, False, started, time.time(), [], "", NO_LOG, worker or "", error)
