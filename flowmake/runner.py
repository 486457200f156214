"""The process seam: start a task's command, capture its output, stop it.

Each task runs in its own session (so its whole process group can be
signalled, and a Ctrl-C at the terminal reaches flowmake alone, which then
decides). One pump thread copies every running task's output to its log
(masking secrets), keeps the last lines, enforces timeouts and posts output
lines and completions to the coordinator's queue; it never touches the state
or the schedule.
"""

from __future__ import annotations

import collections
import errno
import os
import selectors
import signal
import threading
import time
from pathlib import Path

from blake3 import blake3

from .records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing costs every run ~4 ms to import (records.py)
    from typing import BinaryIO, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

TAIL_LINES = 20
OUTPUT_THROTTLE = 0.2  # seconds between two "latest line" messages of one task
MAX_PARTIAL = 1 << 16  # a line longer than this is written before its end arrives


class OutputLine(NamedTuple):
    task: str
    line: str


class Completion(NamedTuple):
    task: str
    returncode: int  # negative: killed by that signal
    timed_out: bool
    started: float
    finished: float
    tail: List[str]
    log_hash: str
    log_error: Optional[str]  # why its log could not be written ("No space left on device"), or None


class PumpFailed(NamedTuple):
    """The output pump hit a bug and stopped: the run cannot go on (its traceback)."""

    traceback: str


class RunningProcess:
    __slots__ = ("task", "pid", "started", "output_fd", "timed_out")

    def __init__(self, task: str, pid: int, started: float, output_fd: int) -> None:
        self.task = task
        self.pid = pid
        self.started = started
        self.output_fd = output_fd  # read end of the pipe that is its stdout and stderr
        self.timed_out = False

    def poll(self) -> Optional[int]:
        """Its exit code (negative: the signal that killed it) once it exited, else None."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        return os.waitstatus_to_exitcode(status) if pid else None

    def wait(self) -> int:
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])

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


class _Stream:
    """One running task's output on its way to the log: lines, tail, hash."""

    def __init__(self, proc: RunningProcess, log_path: str, secrets: Sequence[str],
                 deadline: Optional[float]) -> None:
        self.proc = proc
        # Created by the pump thread, off the coordinator's path: creating a
        # file is one of the dearest steps of starting a task.
        self.log_path = log_path
        self.log: Optional[BinaryIO] = None
        self.linked = False  # log_path is (so far) a link to the run's empty log
        self.log_error: Optional[str] = None  # set once writing the log failed; output then goes unlogged
        self.secrets = [s.encode("utf-8", "surrogateescape") for s in secrets if s]
        self.deadline = deadline
        self.tail: Deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.digest = blake3()
        self.partial = b""
        self.latest: Optional[str] = None  # newest non-blank line not yet posted
        self.last_post = 0.0

    def feed(self, data: bytes) -> None:
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < MAX_PARTIAL:
            self.partial = data  # wait for the line's end: a secret may straddle chunks
            return
        if cut == 0:
            cut = len(data)
        self.partial = data[cut:]
        self._write(data[:cut])

    def close(self) -> None:
        if self.partial:
            self._write(self.partial)
            self.partial = b""
        if self.log is not None:
            try:
                self.log.close()
            except OSError as exc:
                self.failed_log(exc)

    def failed_log(self, exc: OSError) -> None:
        if self.log_error is None:
            self.log_error = exc.strerror or str(exc)

    def _write(self, chunk: bytes) -> None:
        if self.secrets:
            chunk = mask_bytes(chunk, self.secrets)
        if self.log_error is None:
            try:
                if self.log is None:  # its directory was made with the empty log it replaces
                    self.log = open(self.log_path, "wb")
                self.log.write(chunk)
            except OSError as exc:  # the task fails for it (build.py); its output still reaches the tail
                self.failed_log(exc)
        self.digest.update(chunk)
        for raw in chunk[:-1].split(b"\n") if chunk.endswith(b"\n") else chunk.split(b"\n"):
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.tail.append(line)
            shown = line.rsplit("\r", 1)[-1]  # progress bars redraw with \r
            if shown.strip():
                self.latest = shown


class _Exited(NamedTuple):
    """Selector data of a pidfd: the task whose process is to be reaped once it exits."""

    stream: _Stream


class ProcessRunner:
    """Starts tasks; one pump thread moves every task's output and notices exits.

    A single thread with a selector, rather than a thread per task, keeps the
    per-task cost to a fork and two pipe ends, which matters when thousands
    of trivial tasks run.
    """

    def __init__(self, post: Callable[[object], None]) -> None:
        self._post = post
        self.running: Dict[str, RunningProcess] = {}
        self._lock = threading.Lock()
        self._incoming: List[Tuple[int, _Stream]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._pump: Optional[threading.Thread] = None
        self._executables: Dict[Tuple[str, Optional[str]], Optional[str]] = {}
        self._devnull: Optional[int] = None
        self._home: Optional[str] = None  # the directory to go back to
        self._cwd: Optional[str] = None  # the directory the coordinator moved into
        self._empty_log: Optional[str] = None  # the run's first empty log, which later ones link to

    def start(
        self,
        task: str,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        log_path: str,
        secrets: Sequence[str] = (),
        timeout: Optional[float] = None,
    ) -> RunningProcess:
        pid, output_fd = self._spawn(argv, cwd, env)
        proc = RunningProcess(task, pid, time.time(), output_fd)
        self.running[task] = proc
        deadline = time.monotonic() + timeout if timeout is not None else None
        with self._lock:
            self._incoming.append((output_fd, _Stream(proc, log_path, secrets, deadline)))
        if self._pump is None:
            self._pump = threading.Thread(target=self._run_pump, name="flowmake output", daemon=True)
            self._pump.start()
        os.write(self._wake_w, b".")
        return proc

    def _spawn(self, argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> Tuple[int, int]:
        """Start argv in a new session, stdin /dev/null, stdout and stderr into a new pipe: (pid, its read end).

        posix_spawn (vfork and exec, in libc) takes the coordinator half
        the time Popen does, whose Python-side set-up and error pipe were
        most of what starting a trivial task cost. In Python 3.11 it cannot
        set the working directory, so the coordinator moves into the
        project root for the run (`close` moves it back: every path flowmake
        itself uses is absolute); nor does it close inherited descriptors,
        so those from flowmake's caller are made close-on-exec once, as
        flowmake's own always are.
        """
        if self._devnull is None:
            _close_inherited_descriptors()
            self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self._home = os.getcwd()
        if cwd != self._cwd:
            os.chdir(cwd)
            self._cwd = cwd
        executable = self._executable(argv[0], env)
        if executable is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
        read_end, write_end = os.pipe()
        try:
            pid = os.posix_spawn(executable, list(argv), env, file_actions=[
                (os.POSIX_SPAWN_DUP2, self._devnull, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
            ], setsid=True, setsigdef=_RESTORED_SIGNALS)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return pid, read_end

    def close(self) -> None:
        """Back to the directory flowmake started in, once the run's tasks are done."""
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None
        if self._home is not None and self._cwd is not None:
            os.chdir(self._home)
            self._cwd = None

    def _executable(self, name: str, env: Mapping[str, str]) -> Optional[str]:
        """`name` looked up on the task's PATH once per run, not by a failed exec per PATH entry per task."""
        if "/" in name:
            return name
        key = (name, env.get("PATH"))
        if key not in self._executables:
            # None: not found, which the caller reports as exec would.
            self._executables[key] = _which(name, env.get("PATH", os.defpath))
        return self._executables[key]

    def _run_pump(self) -> None:
        try:
            self._pump_loop()
        except BaseException:  # a bug: tell the coordinator, which would otherwise wait forever
            import traceback

            self._post(PumpFailed(traceback.format_exc()))

    def _pump_loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        streams: Dict[int, _Stream] = {}
        while True:
            timeout = OUTPUT_THROTTLE if streams else None
            deadlines = [s.deadline for s in streams.values() if s.deadline is not None]
            if deadlines:
                timeout = max(0.0, min(min(deadlines) - time.monotonic(), OUTPUT_THROTTLE))
            for key, _ in selector.select(timeout):
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    with self._lock:
                        incoming, self._incoming = self._incoming, []
                    for fd, stream in incoming:
                        streams[fd] = stream
                        selector.register(fd, selectors.EVENT_READ, stream)
                        # The log a silent task ends with, made while it runs rather
                        # than between its end and the next task's start.
                        try:
                            self._write_empty_log(stream.log_path)
                            stream.linked = True
                        except OSError as exc:
                            stream.failed_log(exc)
                    continue
                if isinstance(key.data, _Exited):
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    self._complete(key.data.stream, key.data.stream.proc.wait())
                    continue
                stream = key.data
                data = os.read(key.fd, 65536)
                if data:
                    if stream.linked:
                        self._unlink_empty_log(stream)
                    stream.feed(data)
                else:
                    selector.unregister(key.fd)
                    del streams[key.fd]
                    self._finish(stream, selector)
            now = time.monotonic()
            for stream in streams.values():
                if stream.deadline is not None and now >= stream.deadline and not stream.proc.timed_out:
                    stream.proc.timed_out = True
                    stream.proc.signal_group(signal.SIGKILL)  # the pipe's end follows
                if stream.latest is not None and now - stream.last_post >= OUTPUT_THROTTLE:
                    self._post(OutputLine(stream.proc.task, stream.latest))
                    stream.latest, stream.last_post = None, now

    def _finish(self, stream: _Stream, selector: selectors.BaseSelector) -> None:
        stream.close()
        proc = stream.proc
        returncode = proc.poll()
        if returncode is None:
            # It closed its output but has not exited yet: most often a shell in
            # its last microseconds. A pidfd turns readable when it exits, so the
            # pump waits for it like for output; a thread per task cost more.
            try:
                pidfd = os.pidfd_open(proc.pid)  # type: ignore[attr-defined]
            except (AttributeError, OSError):  # not Linux >= 5.3
                threading.Thread(target=self._await_exit, args=(stream,), daemon=True).start()
                return
            selector.register(pidfd, selectors.EVENT_READ, _Exited(stream))
            return
        self._complete(stream, returncode)

    def _write_empty_log(self, path: str) -> None:
        """Give a task that printed nothing its (empty) log file.

        Most trivial tasks print nothing. Each empty log after the run's first
        is a hard link to it: a link costs a directory entry, while a new file
        costs an inode, which ext4 makes dearer the more files were just
        deleted (hundreds of microseconds each after a clean).
        """
        if self._empty_log is not None:
            try:
                os.link(self._empty_log, path)
                return
            except OSError:  # EMLINK (ext4 allows ~65,000 links), or it was deleted: start another
                pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # the run's first log: its directory is made on demand
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        os.close(fd)
        self._empty_log = path

    def _unlink_empty_log(self, stream: _Stream) -> None:
        """The task prints: its log becomes a file of its own, never written through the shared link."""
        stream.linked = False
        try:
            os.unlink(stream.log_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            stream.failed_log(exc)  # and never write through the link
        if stream.log_path == self._empty_log:
            self._empty_log = None  # the next silent task starts a new one

    def _await_exit(self, stream: _Stream) -> None:
        self._complete(stream, stream.proc.wait())

    def _complete(self, stream: _Stream, returncode: int) -> None:
        os.close(stream.proc.output_fd)
        proc = stream.proc
        self._post(Completion(proc.task, returncode, proc.timed_out, proc.started, time.time(),
                              list(stream.tail), stream.digest.hexdigest(), stream.log_error))

    def finished(self, task: str) -> None:
        self.running.pop(task, None)

    def signal_all(self, sig: int) -> None:
        for proc in list(self.running.values()):
            proc.signal_group(sig)


def _which(name: str, path: str) -> Optional[str]:
    """The first executable `name` on `path`, as the shell finds it (shutil.which costs every run ~2 ms to import)."""
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory, name)  # an empty entry is the working directory, as for exec
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


# Python ignores these; a task starts with their defaults, as Popen's restore_signals gives.
_RESTORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))


def _close_inherited_descriptors() -> None:
    """Make every descriptor above stderr close-on-exec: a task inherits none from flowmake's caller."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: the usual range at least
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, closed since


def end_orphans(run_ids: Sequence[str]) -> Dict[int, str]:
    """Kill the process groups still running tasks of these (dead) runs; {group: task} of those ended.

    Every task is started with FLOWMAKE_RUN_ID and FLOWMAKE_TASK in its
    environment, which its processes inherit: a live process that carries a
    dead run's id belongs to one of its tasks, and a pid reused since by an
    unrelated process never does. Needs /proc (Linux); elsewhere nothing is
    killed.
    """
    ended: Dict[int, str] = {}
    if not run_ids or not os.path.isdir("/proc"):
        return ended
    markers = {f"FLOWMAKE_RUN_ID={run_id}".encode() for run_id in run_ids}
    own_group = os.getpgrp()
    for group, members in _live_process_groups().items():
        if group == own_group or group in ended:
            continue
        for member in members:
            task = _task_of(member, markers)
            if task is not None:
                ended[group] = task
                break
    for group in list(ended):
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            del ended[group]
    if ended:
        _wait_until_gone(set(ended))
    return ended


def _task_of(pid: int, markers: set) -> Optional[str]:
    """FLOWMAKE_TASK of a process whose environment carries one of `markers`, else None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:
        return None  # gone, or another user's: not ours either way
    if markers.isdisjoint(entries):
        return None
    for entry in entries:
        if entry.startswith(b"FLOWMAKE_TASK="):
            return entry[len(b"FLOWMAKE_TASK="):].decode("utf-8", "replace")
    return "?"


def _wait_until_gone(groups: set, timeout: float = 5.0) -> None:
    """Return once no live process is left in these process groups.

    SIGKILL is delivered asynchronously: without this wait, a task started
    right after could still meet the orphan writing its output.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not groups.intersection(_live_process_groups()):
            return
        time.sleep(0.01)


def _live_process_groups() -> Dict[int, List[int]]:
    """Process group id -> its members that are alive (zombies are dead, just not reaped)."""
    groups: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read().decode()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X"):
            groups.setdefault(int(fields[2]), []).append(int(entry))
    return groups


def run_hook(command: str, *, shell: Sequence[str], cwd: Path, env: Mapping[str, str], log_path: Path,
             timeout: float, secrets: Sequence[str] = ()) -> Tuple[Optional[int], str]:
    """Run a hook command to completion, output (masked) to its log; (exit code or None on timeout, last line)."""
    import subprocess  # hooks are rare: not worth its import on every run

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
