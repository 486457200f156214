"""What runs inside a Dask worker: one task's command, start to end, and the helpers the client calls there.

`run_task` is the function each task's future runs. It creates the
attempt's log on the shared file system (exclusively: a second execution of
the same attempt, which Dask makes after the first one's worker died, finds
it there and runs nothing), starts the command in its own session, moves its
output into the log through the same `Stream` as the local executor
(masking secrets, hashing, keeping the tail), posts the latest line and the
lines the output mode wants to the run's event topic while it runs, and
kills the process group on a timeout or when the future is cancelled (a
Ctrl-C, or the client gone). After a clean exit it checks and hashes the
outputs here, where the files are, so the coordinator only compares stats.

A per-worker watchdog process (watchdog.py) holds the process group of each
running command: if the worker process dies (kill -9, out of memory), the
watchdog sees its pipe close and kills them, so no command outlives its
worker to write an output behind a retry's back.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...store.fsclock import FsClock
from ...store.hashing import FileHasher
from ..files import LocalFiles
from ..orphans import end_orphans
from ..stream import Stream

POST_INTERVAL = 0.2  # seconds between two output posts of one task (the local executor's throttle)
CHECK_INTERVAL = 0.2  # seconds between looks at whether the task is still wanted
GRACE_PERIOD = 5.0  # seconds between SIGTERM and SIGKILL when the task is no longer wanted
SENTINEL_DIR = ".flowmake/dask"
# The task states in which the worker still wants the function's result.
_WANTED = ("executing", "long-running", "resumed")

_running: Dict[Tuple[str, str], "subprocess.Popen[bytes]"] = {}  # (run id, task) -> its process, in this worker
_running_lock = threading.Lock()
_watchdog: Optional["subprocess.Popen[bytes]"] = None
_clocks: Dict[str, FsClock] = {}


def run_task(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one attempt's command on this worker; what the coordinator makes a Completion of."""
    from distributed import get_worker

    worker = get_worker()
    where = worker.address
    key = worker.get_current_task()
    log_path = os.path.join(spec["cwd"], spec["log"])
    log_error = None
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    except FileExistsError:
        return {"lost": True, "worker": where}  # Dask's re-run of an attempt whose worker died: not ours to run
    except OSError as exc:
        log_error = exc.strerror or str(exc)
    started = time.time()
    try:
        proc = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=spec["env"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return {"start_error": exc.strerror or str(exc), "worker": where}
    ident = (spec["run_id"], spec["task"])
    with _running_lock:
        _running[ident] = proc
    _guard(f"+{proc.pid}\n")
    topic = spec["topic"]
    worker.log_event(topic, {"task": spec["task"], "placed": where})
    try:
        stream = Stream(proc, log_path, spec["secrets"], None, lines=spec["lines"], latest=spec["latest"])  # type: ignore[arg-type]
        if log_error is not None:
            stream.log_error = log_error
        returncode, timed_out = _follow(proc, stream, spec, worker, key, topic)
    finally:
        with _running_lock:
            _running.pop(ident, None)
        _guard(f"-{proc.pid}\n")
    result: Dict[str, Any] = {
        "returncode": returncode, "timed_out": timed_out, "started": started, "finished": time.time(),
        "tail": list(stream.tail), "log_hash": stream.log_hash(), "log_error": stream.log_error,
        "worker": where, "lines": [], "omitted": 0,
    }
    if stream.lines:
        result["lines"], result["omitted"] = stream.take_lines()
    if returncode == 0 and not timed_out:
        result.update(_outputs(spec["cwd"], spec["outputs"]))
    # Posted as well as returned: the topic reaches the client with the task's end,
    # where fetching a future's result from the worker costs another round trip.
    worker.log_event(topic, {"task": spec["task"], "key": key, "result": result})
    return result


def _follow(proc: "subprocess.Popen[bytes]", stream: Stream, spec: Dict[str, Any], worker: Any, key: Any,
            topic: str) -> Tuple[int, bool]:
    """Move the command's output until its own process exits; (its return code, whether it timed out)."""
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    poller = select.poll()
    poller.register(out_fd, select.POLLIN)
    try:
        exit_fd = os.pidfd_open(proc.pid)  # type: ignore[attr-defined]
        poller.register(exit_fd, select.POLLIN)
    except (AttributeError, OSError):  # not Linux >= 5.3: its exit is polled for
        exit_fd = -1
    deadline = time.monotonic() + spec["timeout"] if spec["timeout"] else None
    timed_out, eof, stop_at = False, False, None
    last_post = last_check = time.monotonic()
    try:
        while True:
            wait_s = POST_INTERVAL if exit_fd >= 0 else 0.05
            for fd, _ in poller.poll(wait_s * 1000):
                if fd == out_fd and not eof:
                    eof = not _drain(out_fd, stream)
                    if eof:
                        poller.unregister(out_fd)
            if _exited(exit_fd) if exit_fd >= 0 else _has_exited(proc.pid):
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline and not timed_out:
                timed_out = True
                _signal_group(proc.pid, signal.SIGKILL)
            if now - last_check >= CHECK_INTERVAL:
                last_check = now
                if stop_at is None and not _still_wanted(worker, key):
                    _signal_group(proc.pid, signal.SIGTERM)
                    stop_at = now + GRACE_PERIOD
                elif stop_at is not None and now >= stop_at:
                    _signal_group(proc.pid, signal.SIGKILL)
            if now - last_post >= POST_INTERVAL:
                last_post = now
                _post(worker, topic, spec["task"], stream)
        # Its own process exited: end what it left in its group, then take what was written.
        _signal_group(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
        if not eof:
            _drain(out_fd, stream)
        stream.close()
        _post(worker, topic, spec["task"], stream, final=True)
        return returncode, timed_out
    finally:
        if exit_fd >= 0:
            os.close(exit_fd)
        proc.stdout.close()


def _exited(exit_fd: int) -> bool:
    return bool(select.select([exit_fd], [], [], 0)[0])


def _has_exited(pid: int) -> bool:
    """Whether it exited, left unreaped (its pid, its group's id, stays reserved for the kill that follows)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _drain(fd: int, stream: Stream) -> bool:
    """Feed what the pipe holds to the stream; False once it reached its end."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        stream.feed(chunk)


def _post(worker: Any, topic: str, task: str, stream: Stream, *, final: bool = False) -> None:
    """The latest line and the lines to print since the last post, to the run's topic (the client's view)."""
    msg: Dict[str, Any] = {"task": task}
    if stream.latest is not None and not final:
        msg["latest"], stream.latest = stream.latest, None
    if stream.streaming and stream.lines:
        msg["lines"], msg["omitted"] = stream.take_lines()
    if len(msg) > 1:
        worker.log_event(topic, msg)


def _still_wanted(worker: Any, key: Any) -> bool:
    """False once the future was cancelled (Ctrl-C, the client gone) or the worker is closing."""
    if getattr(worker.status, "name", "running") not in ("running", "paused", "closing_gracefully"):
        return False
    ts = worker.state.tasks.get(key)
    return ts is not None and ts.state in _WANTED


def _outputs(root: str, outputs: Sequence[str]) -> Dict[str, Any]:
    """Which outputs are missing, and the stat entries of the rest, hashed here where the files are."""
    files = LocalFiles(root)  # type: ignore[arg-type]
    missing = files.missing(outputs)
    if missing:
        return {"missing": missing, "described": {m: files.describe_missing(m) for m in missing}}
    clock = _clocks.get(root)
    if clock is None:
        clock = _clocks[root] = FsClock.for_project(root)
    hasher = FileHasher(root, {}, clock=clock)  # type: ignore[arg-type]
    hashes = {o: hasher.hash(o) for o in outputs}
    return {"missing": [], "hashes": hashes, "entries": {p: tuple(e) for p, e in hasher.updated.items()}}


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _guard(line: str) -> None:
    """Tell this worker's watchdog about a process group (+PID started, -PID reaped); started on first use."""
    global _watchdog
    with _running_lock:
        if _watchdog is None or _watchdog.poll() is not None:
            _watchdog = subprocess.Popen([sys.executable, "-m", "flowmake.executors.dask.watchdog"],
                                         stdin=subprocess.PIPE, start_new_session=True)
        assert _watchdog.stdin is not None
        try:
            _watchdog.stdin.write(line.encode())
            _watchdog.stdin.flush()
        except OSError:  # it died: the next start makes another
            pass


# -- run by the client on every worker (Client.run) ---------------------------


def signal_run(run_id: str, sig: int) -> List[str]:
    """Signal the process group of every command of this run on this worker; the tasks signalled."""
    with _running_lock:
        mine = [(task, proc) for (rid, task), proc in _running.items() if rid == run_id]
    for _, proc in mine:
        _signal_group(proc.pid, sig)
    return [task for task, _ in mine]


def end_run_orphans(run_ids: Sequence[str]) -> List[str]:
    """End what dead runs left running on this worker's host (orphans.end_orphans): their tasks."""
    return list(end_orphans(run_ids).values())


def sees_sentinel(path: str, token: str) -> Optional[str]:
    """None when this worker reads `token` in `path` (it sees the project); else what it saw instead."""
    try:
        with open(path, encoding="utf-8") as f:
            found = f.read()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None if found == token else f"{path} holds other content (another project at that path?)"
