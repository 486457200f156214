"""The process seam: start a task's command, capture its output, stop it.

Each task runs in its own session (so its whole process group can be
signalled, and a Ctrl-C at the terminal reaches flowmake alone, which then
decides). One worker thread per running task copies the output to the log
file, keeps the last lines and posts messages to the coordinator's queue;
worker threads never touch the state or the schedule.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from blake3 import blake3

TAIL_LINES = 20
OUTPUT_THROTTLE = 0.2  # seconds between two "latest line" messages of one task


@dataclass(frozen=True)
class OutputLine:
    task: str
    line: str


@dataclass(frozen=True)
class Completion:
    task: str
    pid: int
    returncode: int  # negative: killed by that signal
    timed_out: bool
    started: float
    finished: float
    tail: List[str]
    log_hash: str


@dataclass
class RunningProcess:
    task: str
    pid: int
    start_ticks: str
    started: float
    _popen: "subprocess.Popen[bytes]" = field(repr=False)
    timed_out: bool = False

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def mask(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


def mask_bytes(data: bytes, secrets: Sequence[bytes]) -> bytes:
    for value in secrets:
        if value:
            data = data.replace(value, b"***")
    return data


class ProcessRunner:
    def __init__(self, post: Callable[[object], None]) -> None:
        self._post = post
        self.running: Dict[str, RunningProcess] = {}

    def start(
        self,
        task: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        secrets: Sequence[str] = (),
        timeout: Optional[float] = None,
    ) -> RunningProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "wb")
        try:
            popen = subprocess.Popen(
                list(argv),
                cwd=str(cwd),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            log.close()
            raise
        proc = RunningProcess(task, popen.pid, process_start_ticks(popen.pid) or "", time.time(), popen)
        self.running[task] = proc
        worker = threading.Thread(
            target=self._pump, args=(proc, log, list(secrets), timeout), name=f"task {task}", daemon=True
        )
        worker.start()
        return proc

    def _pump(self, proc: RunningProcess, log, secrets: List[str], timeout: Optional[float]) -> None:
        timer = None
        if timeout is not None:
            def expire() -> None:
                proc.timed_out = True
                proc.signal_group(signal.SIGKILL)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        tail: Deque[str] = collections.deque(maxlen=TAIL_LINES)
        digest = blake3()
        last_post = 0.0
        pending: Optional[str] = None
        stream = proc._popen.stdout
        assert stream is not None
        secret_bytes = [s.encode("utf-8", "surrogateescape") for s in secrets]
        with log:
            for raw in stream:
                if secret_bytes:
                    raw = mask_bytes(raw, secret_bytes)
                text = raw.decode("utf-8", "replace")
                log.write(raw)
                digest.update(raw)
                line = text.rstrip("\r\n")
                tail.append(line)
                line = line.rsplit("\r", 1)[-1]  # progress bars redraw with \r
                if line.strip():
                    pending = line
                now = time.monotonic()
                if pending is not None and now - last_post >= OUTPUT_THROTTLE:
                    self._post(OutputLine(proc.task, pending))
                    pending, last_post = None, now
            log.flush()
        returncode = proc._popen.wait()
        if timer is not None:
            timer.cancel()
        self._post(
            Completion(proc.task, proc.pid, returncode, proc.timed_out, proc.started, time.time(),
                       list(tail), digest.hexdigest())
        )

    def finished(self, task: str) -> None:
        self.running.pop(task, None)

    def signal_all(self, sig: int) -> None:
        for proc in list(self.running.values()):
            proc.signal_group(sig)


def process_start_ticks(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (Linux), to tell a
    process apart from a later one that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields
    # after the last ')' are plain. starttime is field 22.
    fields = data[data.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def end_orphans(processes: Sequence[tuple]) -> List[int]:
    """Kill the process groups of a dead run's tasks that are still alive.

    Only a group whose leader is gone or still has the recorded start time is
    signalled: a pid reused by an unrelated process is left alone. Without
    /proc (not Linux) only leaders that are provably ours could be told
    apart, so nothing is killed there.
    """
    ended: List[int] = []
    if not os.path.isdir("/proc"):
        return ended
    for pid, start_ticks, *_ in processes:
        now = process_start_ticks(pid)
        if now is not None and now != start_ticks:
            continue  # the pid belongs to someone else now
        try:
            os.killpg(pid, signal.SIGKILL)
            ended.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return ended


def run_hook(command: str, *, shell: Sequence[str], cwd: Path, env: Mapping[str, str], log_path: Path,
             timeout: float, secrets: Sequence[str] = ()) -> Tuple[Optional[int], str]:
    """Run a hook command to completion, output (masked) to its log; (exit code or None on timeout, last line)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(list(shell) + [command], cwd=str(cwd), env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: Optional[int] = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        output, _ = proc.communicate()
        code = None
    output = mask_bytes(output, [s.encode("utf-8", "surrogateescape") for s in secrets])
    log_path.write_bytes(output)
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return code, (lines[-1] if lines else "")
