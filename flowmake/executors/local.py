"""The process seam: start a task's command, capture its output, stop it.

Each task runs in its own session (so its whole process group can be
signalled, and a Ctrl-C at the terminal reaches flowmake alone, which then
decides). The coordinator's own thread moves the output: `wait` copies every
running task's output to its log (masking secrets), keeps the last lines,
enforces timeouts and returns output lines (the latest, for live views; and
every line when the output mode prints them) and completions. One thread, as
make and ninja have it: a second one cost each task a few dozen futex calls
handing over the GIL and the queue between them, and delayed noticing a
task's end whenever the coordinator held the GIL. The price: while the
coordinator hashes a large file (~0.1 s per GiB here), a task that fills
its pipe (64 KiB) waits for it to come back.

A task is over when its own process (the shell, or the command run without
one) exits, not when its output pipe closes: a background child (`cmd &`)
may hold the pipe open for as long as it lives. When the task's process
exits, whatever is left of its process group is killed (SIGKILL), the
output already written is read, and the task completes, so a leftover
child can neither hang the run nor outlive it. A process that left the
group (`setsid`) is not killed; its output after that moment is not read.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import signal
import time
from pathlib import Path

from blake3 import blake3

from ..masking import Mask
from ..records import TYPE_CHECKING, NamedTuple
from ..removal import remove
from .files import LocalFiles
from .messages import Completion, OutputLine, OutputLines
from .shellfree import is_plain_sh, simple_command

if TYPE_CHECKING:  # typing costs every run ~4 ms to import (records.py)
    from typing import (
        Any,
        BinaryIO,
        Deque,
        Dict,
        List,
        Mapping,
        Optional,
        Sequence,
        Tuple,
        Union,
    )

    from .messages import Command
    from .protocol import Message

TAIL_LINES = 20
OUTPUT_THROTTLE = 0.2  # seconds between two "latest line" messages of one task
MAX_PARTIAL = 1 << 16  # a line longer than this is written before its end arrives
NO_MASK = Mask(())
UNREAPED_POLL = 0.005  # seconds between looks at a task that closed its output but has not exited (no pidfd)
EXIT_POLL = 0.05  # seconds between looks at a task whose output is still open, for its exit (no pidfd)
# A line redrawn with carriage returns (a progress bar) is handed to the
# output modes that print lines once it ends, and meanwhile at most once per
# this many seconds: a log gets a line every half minute, not every redraw,
# and is never silent for the ten minutes after which CI services kill a job.
REDRAW_INTERVAL = 30.0
BLOCK_LINES = 10_000  # lines of a task's output kept for `--output group`; earlier ones are only in its log


class RunningProcess:
    __slots__ = ("task", "pid", "started", "output_fd", "timed_out", "_returncode")

    def __init__(self, task: str, pid: int, started: float, output_fd: int) -> None:
        self.task = task
        self.pid = pid
        self.started = started
        self.output_fd = output_fd  # read end of the pipe that is its stdout and stderr
        self.timed_out = False
        self._returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        """Its exit code (negative: the signal that killed it) once it exited (reaping it), else None."""
        if self._returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._returncode = os.waitstatus_to_exitcode(status)
        return self._returncode

    def wait(self) -> int:
        if self._returncode is None:
            self._returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self._returncode

    def has_exited(self) -> bool:
        """Whether it exited, leaving it unreaped where the system allows (its pid and group id stay reserved)."""
        if self._returncode is not None:
            return True
        waitid = getattr(os, "waitid", None)
        if waitid is None:  # reaped at once instead: its group is then signalled a moment after
            return self.poll() is not None
        return waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class _Stream:
    """One running task's output on its way to the log: lines, tail, hash; and whether it is over.

    `lines` ("stream" or "block") also keeps every line for the output modes
    that print them (docs/cli.md, "Task output"): a line's shown text is its
    final state, what a terminal would show after its carriage returns.
    """

    def __init__(self, proc: RunningProcess, log_path: str, secrets: Sequence[str],
                 deadline: Optional[float], *, lines: Optional[str] = None, latest: bool = True) -> None:
        self.proc = proc
        # Made by `wait` before it next sleeps, not between a task's end and
        # the next one's start: creating a file is dear (see _write_empty_log).
        self.log_path = log_path
        self.log: Optional[BinaryIO] = None
        self.linked = False  # log_path is (so far) a link to the run's empty log
        self.log_error: Optional[str] = None  # set once writing the log failed; output then goes unlogged
        self.mask = Mask(secrets) if secrets else NO_MASK
        self.deadline = deadline
        self.tail: Deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.digest = blake3()
        self.partial = b""  # not yet masked: the rest after the last line end or carriage return
        self.drawing = b""  # masked: the line being drawn, from its last carriage return on
        self.latest: Optional[str] = None  # newest non-blank line not yet posted
        self.last_post = 0.0
        self.eof = False  # its output pipe reached its end (every writer closed it)
        self.exit_fd = -1  # a pidfd that turns readable when the task's process exits; -1 without one
        self.shows_latest = latest
        self.block = lines == "block"
        self.streaming = lines == "stream"
        # Lines not yet handed over; a block keeps only its last BLOCK_LINES.
        self.lines: Optional[Deque[str]] = None
        if lines is not None:
            self.lines = collections.deque(maxlen=BLOCK_LINES if self.block else None)
        self.line_count = 0  # lines ever put in `lines`: what a full block leaves out is the difference
        self.drawn_since: Optional[float] = None  # when the line being drawn last had a state handed over, or began
        self.drawn_shown: Optional[str] = None  # that state

    def feed(self, data: bytes) -> None:
        data = self.partial + data
        # Up to a line's end or a carriage return (a progress bar's next state,
        # which the tree shows while the line is still drawn).
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0 and len(data) < MAX_PARTIAL:
            self.partial = data  # wait for the line's end: a secret may straddle chunks
            return
        if cut == 0:
            cut = len(data)
        if self.mask and (self.mask.spans_lines or data[cut - 1] != 10):  # 10: b"\n"
            cut = self._masked_cut(data, cut)
        self.partial = data[cut:]
        if cut:
            self._write(data[:cut])

    def _masked_cut(self, data: bytes, cut: int) -> int:
        """Where to write data up to so that no secret value is cut in two; at a line's end where there is one."""
        while True:
            point = self.mask.split_point(data, cut)
            if point == cut:
                return cut
            line_end = max(data.rfind(b"\n", 0, point), data.rfind(b"\r", 0, point)) + 1
            if line_end == 0:
                return point if len(data) >= MAX_PARTIAL else 0
            cut = line_end

    def close(self) -> None:
        if self.partial:
            self._write(self.partial)
            self.partial = b""
        if self.drawing:
            self._lines([self.drawing])
            self.drawing = b""
        if self.log is not None:
            try:
                self.log.close()
            except OSError as exc:
                self.failed_log(exc)

    def failed_log(self, exc: OSError) -> None:
        if self.log_error is None:
            self.log_error = exc.strerror or str(exc)

    def _write(self, chunk: bytes) -> None:
        if self.mask:
            chunk = self.mask.data(chunk)
        if self.log_error is None:
            try:
                if self.log is None:  # its directory was made with the empty log it replaces
                    self.log = open(self.log_path, "wb")
                self.log.write(chunk)
            except OSError as exc:  # the task fails for it (engine/loop.py); its output still reaches the tail
                self.failed_log(exc)
        self.digest.update(chunk)
        parts = (self.drawing + chunk).split(b"\n")
        drawing = parts.pop()
        if parts:
            self._lines(parts)
        # Only its latest state matters now (the earlier ones were drawn over).
        redraw = drawing.rfind(b"\r", 0, len(drawing) - 1)
        self.drawing = drawing[redraw + 1:] if redraw >= 0 else drawing
        if len(self.drawing) >= MAX_PARTIAL:
            self._lines([self.drawing])  # a line too long to hold (or no text at all) is cut
            self.drawing = b""
        elif self.drawing:
            state = self.drawing.rstrip(b"\r").decode("utf-8", "replace")
            if state.strip() and self.shows_latest:
                self.latest = state
            if self.lines is not None and self.drawn_since is None:
                self.drawn_since = time.monotonic()

    def _lines(self, parts: List[bytes]) -> None:
        """Finished lines, without their line ends: their final states go to the tail and `lines`.

        Only the last TAIL_LINES are decoded when no mode prints every line:
        a task may print millions, all moved on the coordinator's thread.
        """
        kept = parts if self.lines is not None else parts[-TAIL_LINES:]
        if any(b"\r" in raw for raw in kept):
            kept = [raw.rstrip(b"\r") for raw in kept]
            kept = [raw[raw.rfind(b"\r") + 1:] for raw in kept]
        texts = [raw.decode("utf-8", "replace") for raw in kept]
        self.tail.extend(texts)
        if self.shows_latest:
            for text in reversed(texts):
                if text.strip():
                    self.latest = text
                    break
        if self.lines is not None:
            if self.drawn_shown is not None and texts[0] == self.drawn_shown:
                del texts[0]  # handed over already, while it was drawn
            self.drawn_since = self.drawn_shown = None
            self.lines.extend(texts)
            self.line_count += len(texts)

    def hand_over_drawn_state(self, now: float) -> None:
        """The line being drawn showed no state for REDRAW_INTERVAL: its current one is handed over."""
        assert self.lines is not None
        state = self.drawing.rstrip(b"\r").decode("utf-8", "replace")
        if state.strip() and state != self.drawn_shown:
            self.lines.append(state)
            self.line_count += 1
            self.drawn_shown = state
        self.drawn_since = now

    def take_lines(self) -> Tuple[List[str], int]:
        """The lines not yet handed over, and how many before them a full block left out."""
        assert self.lines is not None
        lines = list(self.lines)
        omitted = self.line_count - len(lines)
        self.lines.clear()
        self.line_count = 0
        return lines, omitted


class _Exited(NamedTuple):
    """What a watched pidfd stands for: the task whose process is to be reaped once it exits."""

    stream: _Stream


class _Watched:
    """The descriptors `wait` sleeps on, each with what it stands for.

    select.poll, not the selectors module, whose classes cost every run that
    starts a task ~0.5 ms to import; a run watches a few descriptors at a time.
    """

    def __init__(self) -> None:
        self._poll = select.poll()
        self._data: Dict[int, object] = {}

    def add(self, fd: int, data: object) -> None:
        self._poll.register(fd, select.POLLIN)
        self._data[fd] = data

    def remove(self, fd: int) -> None:
        self._poll.unregister(fd)
        del self._data[fd]

    def holds(self, fd: int, data: object) -> bool:
        """Whether `fd` is still watched for `data` (not let go of since `ready` listed it)."""
        return fd in self._data and self._data[fd] is data

    def ready(self, timeout: Optional[float]) -> List[Tuple[int, Any]]:
        """(descriptor, data) of those readable (or hung up) within `timeout` seconds (None: no limit)."""
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))  # rounded up: no busy spin
        return [(fd, self._data[fd]) for fd, _ in self._poll.poll(ms)]


class ProcessRunner:
    """Starts tasks; `wait` moves their output and notices their ends.

    One poll over every task's output pipe, rather than a thread per
    task, keeps the per-task cost to a spawn and two pipe ends, which matters
    when thousands of trivial tasks run.
    """

    def __init__(self, *, lines: Optional[str] = None, latest: bool = True) -> None:
        """`lines`: None, or hand every line over as it comes ("stream") or when the task ends ("block");
        `latest`: report each running task's latest line (OutputLine)."""
        self._lines = lines
        self._latest = latest
        self.running: Dict[str, RunningProcess] = {}
        self._watched = _Watched()
        self._streams: Dict[int, _Stream] = {}  # output fd -> its stream, until the task completes
        self._new: List[_Stream] = []  # started since the last wait: their empty logs are still to make
        self._unwatched: List[_Stream] = []  # running without a pidfd: their exits are polled for
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._watched.add(self._wake_r, None)
        self._executables: Dict[Tuple[str, Optional[str]], Optional[str]] = {}
        self._system_sh: Dict[Optional[str], bool] = {}  # PATH -> its `sh` is /bin/sh
        self._pwds: Dict[Tuple[Optional[str], Optional[str]], str] = {}  # (inherited PWD, cwd) -> PWD as sh sets it
        self._devnull: Optional[int] = None
        self._home: Optional[str] = None  # the directory to go back to
        self._cwd: Optional[str] = None  # the directory the coordinator moved into
        self._empty_log: Optional[str] = None  # the run's first empty log, which later ones link to
        self._cpus = _usable_cpus()

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
        stream = _Stream(proc, log_path, secrets, deadline, lines=self._lines, latest=self._latest)
        self._streams[output_fd] = stream
        self._watched.add(output_fd, stream)
        try:
            # Watched from the start: the task ends with its process, whoever else holds its output.
            stream.exit_fd = os.pidfd_open(pid)  # type: ignore[attr-defined]
        except (AttributeError, OSError):  # not Linux >= 5.3: polled instead
            self._unwatched.append(stream)
        else:
            self._watched.add(stream.exit_fd, _Exited(stream))
        self._new.append(stream)
        return proc

    def wake(self) -> None:
        """Make a `wait` in progress return now (safe in a signal handler)."""
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b".")
        except BlockingIOError:  # already full of wake-ups
            pass

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
        read_end, write_end = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, self._devnull, 0),
            (os.POSIX_SPAWN_DUP2, write_end, 1),
            (os.POSIX_SPAWN_DUP2, write_end, 2),
        ]
        try:
            pid = self._spawn_without_shell(argv, env, actions)
            if pid is None:
                executable = self._executable(argv[0], env)
                if executable is None:
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
                pid = os.posix_spawn(executable, list(argv), env, file_actions=actions,
                                     setsid=True, setsigdef=_RESTORED_SIGNALS)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        if len(self.running) + 1 < self._cpus:  # a CPU is left for the coordinator to move to
            _yield_cpu()
        return pid, read_end

    def _spawn_without_shell(self, argv: Sequence[str], env: Mapping[str, str], actions: List[Any]) -> Optional[int]:
        """Start `sh -c COMMAND` as COMMAND itself when it needs no shell (shellfree.py): its pid, else None.

        None as well when it cannot start that way: the shell then finds,
        reports or handles what stopped it (not found, a script without #!,
        a redirect it cannot create), as it does for any command.
        """
        if len(argv) != 3 or not is_plain_sh(argv[:2]) or "PATH" not in env:
            return None  # without PATH, sh searches its own default, not ours
        command = simple_command(argv[2])
        if command is None:
            return None
        executable = self._executable(command.argv[0], env)
        if executable is None or not self._is_system_sh(env):
            return None
        pwd = self._shell_pwd(env.get("PWD"))
        if env.get("PWD") != pwd:
            env = dict(env, PWD=pwd)
        if command.stdout_path is not None:
            actions = actions + [(os.POSIX_SPAWN_OPEN, 1, command.stdout_path,
                                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)]
        try:
            return os.posix_spawn(executable, command.argv, env, file_actions=actions,
                                  setsid=True, setsigdef=_RESTORED_SIGNALS)
        except OSError:  # nothing ran (posix_spawn reports the exec's failure)
            return None

    def _is_system_sh(self, env: Mapping[str, str]) -> bool:
        """The `sh` on the task's PATH is /bin/sh, not a wrapper someone put first to see every command."""
        path = env.get("PATH")
        if path not in self._system_sh:
            found = self._executable("sh", env)
            self._system_sh[path] = found is not None and os.path.realpath(found) == os.path.realpath("/bin/sh")
        return self._system_sh[path]

    def _shell_pwd(self, inherited: Optional[str]) -> str:
        """PWD as a POSIX sh exports it: the inherited one if it names the working directory, else the real path."""
        key = (inherited, self._cwd)
        if key not in self._pwds:
            pwd = None
            if inherited is not None and inherited.startswith("/"):
                try:
                    if os.path.samestat(os.stat(inherited), os.stat(".")):
                        pwd = inherited
                except OSError:
                    pass
            self._pwds[key] = pwd or os.getcwd()
        return self._pwds[key]

    def close(self) -> None:
        """Back to the directory flowmake started in, once the run's tasks are done."""
        if self._wake_w >= 0:
            # Forgotten first: a late signal's wake() must not write to a closed or reused number.
            wake_fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
            for fd in wake_fds:
                os.close(fd)
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

    def wait(self, timeout: Optional[float]) -> List[Union[OutputLine, OutputLines, Completion]]:
        """Move output until something happens or `timeout` seconds pass (None: no limit).

        Returns the output lines and completions that came, in order; an
        empty list after a timeout or a `wake`.
        """
        messages: List[Union[OutputLine, OutputLines, Completion]] = []
        for stream in self._new:
            # The log a silent task ends with, made while it runs rather than
            # between its end and the next task's start.
            try:
                self._write_empty_log(stream.log_path)
                stream.linked = True
            except OSError as exc:
                stream.failed_log(exc)
        self._new.clear()
        now = time.monotonic()
        for stream in self._streams.values():
            if stream.latest is not None:  # its latest line is due at the end of the throttle
                timeout = _sooner(timeout, stream.last_post + OUTPUT_THROTTLE - now)
            if stream.drawn_since is not None and stream.streaming:
                timeout = _sooner(timeout, stream.drawn_since + REDRAW_INTERVAL - now)
            if stream.deadline is not None and not stream.proc.timed_out:  # once killed, only its end is awaited
                timeout = _sooner(timeout, stream.deadline - now)
        if self._unwatched:
            # Soon after its output closed (most often a shell in its last
            # microseconds), more slowly while it may still be working.
            closed = any(stream.eof for stream in self._unwatched)
            timeout = _sooner(timeout, UNREAPED_POLL if closed else EXIT_POLL)
        for fd, data in self._watched.ready(timeout):
            if not self._watched.holds(fd, data):
                continue  # let go of earlier in this loop (a task that ended): its number may be reused
            if data is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif isinstance(data, _Exited):
                messages.extend(self._end(data.stream))
            else:
                chunk = os.read(fd, 65536)
                if chunk:
                    if data.linked:
                        self._unlink_empty_log(data)
                    data.feed(chunk)
                else:
                    self._output_closed(data)
                    # Most often its process has exited by now: end it at once, not after another poll.
                    if data.proc.has_exited():
                        messages.extend(self._end(data))
        for stream in list(self._unwatched):
            if stream.proc.has_exited():
                messages.extend(self._end(stream))
        now = time.monotonic()
        for stream in self._streams.values():
            if stream.deadline is not None and now >= stream.deadline and not stream.proc.timed_out:
                stream.proc.timed_out = True
                stream.proc.signal_group(signal.SIGKILL)  # the pipe's end follows
            if stream.latest is not None and now - stream.last_post >= OUTPUT_THROTTLE:
                messages.append(OutputLine(stream.proc.task, stream.latest))
                stream.latest, stream.last_post = None, now
            if stream.streaming:
                if stream.drawn_since is not None and now - stream.drawn_since >= REDRAW_INTERVAL:
                    stream.hand_over_drawn_state(now)
                if stream.lines:
                    messages.append(OutputLines(stream.proc.task, *stream.take_lines()))
        return messages

    def _output_closed(self, stream: _Stream) -> None:
        """Every writer closed the task's output; the task ends when its process exits (its pidfd, or a poll)."""
        self._watched.remove(stream.proc.output_fd)
        stream.eof = True
        stream.close()

    def _end(self, stream: _Stream) -> List[Union[OutputLines, Completion]]:
        """The task's process exited: end what it left running, take the output written, reap it."""
        proc = stream.proc
        if stream.exit_fd >= 0:
            self._watched.remove(stream.exit_fd)
            os.close(stream.exit_fd)
            stream.exit_fd = -1
        elif stream in self._unwatched:
            self._unwatched.remove(stream)
        # While the exited process is not reaped its pid, which is also its
        # group's id, cannot be reused: the signal reaches its leftovers only.
        proc.signal_group(signal.SIGKILL)
        returncode = proc.wait()
        if not stream.eof:
            # Held open by a leftover (now killed) or by one that left the
            # group: what was written is in the pipe, and no end is waited for.
            os.set_blocking(proc.output_fd, False)
            try:
                while True:
                    chunk = os.read(proc.output_fd, 65536)
                    if not chunk:
                        break
                    if stream.linked:
                        self._unlink_empty_log(stream)
                    stream.feed(chunk)
            except BlockingIOError:
                pass
            self._output_closed(stream)
        return self._completion(stream, returncode)

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
            # The run's own log directory is its boundary: a name in it passes through no link.
            remove(os.path.dirname(stream.log_path), os.path.basename(stream.log_path), boundary="the run's logs")
        except OSError as exc:
            stream.failed_log(exc)  # and never write through the link
        if stream.log_path == self._empty_log:
            self._empty_log = None  # the next silent task starts a new one

    def _completion(self, stream: _Stream, returncode: int) -> List[Union[OutputLines, Completion]]:
        """Its last lines (or its whole block), then its completion."""
        ended: List[Union[OutputLines, Completion]] = []
        if stream.lines:
            ended.append(OutputLines(stream.proc.task, *stream.take_lines()))
        proc = stream.proc
        del self._streams[proc.output_fd]
        os.close(proc.output_fd)
        ended.append(Completion(proc.task, returncode, proc.timed_out, proc.started, time.time(),
                                list(stream.tail), stream.digest.hexdigest(), stream.log_error))
        return ended

    def finished(self, task: str) -> None:
        self.running.pop(task, None)

    def signal_all(self, sig: int) -> None:
        for proc in list(self.running.values()):
            proc.signal_group(sig)


# How each output mode (model.OUTPUT_MODES) needs the lines handed over.
_LINE_DELIVERY = {"prefixed": "stream", "interleaved": "stream", "group": "block"}


class LocalExecutor:
    """The executor of processes on this machine (executors/protocol.py): a ProcessRunner and the local files."""

    runs_commands = True

    def __init__(self, root: Path, *, output: str = "latest") -> None:
        """`output`: the run's output mode, which says which lines the loop wants handed over."""
        self.files = LocalFiles(root)
        self._runner = ProcessRunner(lines=_LINE_DELIVERY.get(output), latest=output != "none")

    def start(self, command: Command) -> None:
        self._runner.start(command.task, command.argv, cwd=command.cwd, env=command.env,
                           log_path=os.path.join(command.cwd, command.log), secrets=command.secrets,
                           timeout=command.timeout)

    def wait(self, timeout: Optional[float]) -> List[Message]:
        messages = self._runner.wait(timeout)
        for message in messages:
            if type(message) is Completion:
                self._runner.finished(message.task)
        return messages

    def wake(self) -> None:
        self._runner.wake()

    def cancel(self, *, at_once: bool) -> None:
        self._runner.signal_all(signal.SIGKILL if at_once else signal.SIGTERM)

    def end_orphans(self, run_ids: Sequence[str]) -> List[str]:
        return list(end_orphans(run_ids).values())

    def close(self) -> None:
        self._runner.close()


# Linux starts a spawned child on its parent's CPU, and the parent, woken by
# the child's exec, runs on there first: whatever the coordinator does next
# (the last task's record, the next event) delayed the child by as much,
# while the other CPUs idled. Yielding once lets the child run at once and
# the coordinator move to an idle CPU. Measured over the 120 tasks of a
# one-edit rebuild, run one after another: the tasks took ~18 % longer under
# flowmake than spawned bare, and 300 us of parent work after each spawn
# added 38 ms to them, of which 5 ms remained with the yield. With no idle
# CPU left (every one running a task), the yield only queues the coordinator
# behind a task: a 1,000-task build at -j2 on 2 CPUs took 1.34 s with it
# after every spawn and 1.17 s with it only when a CPU is left.
_yield_cpu = getattr(os, "sched_yield", lambda: None)


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's limit), else all of them."""
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _sooner(timeout: Optional[float], other: float) -> float:
    return other if timeout is None else min(timeout, other)


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
    output = Mask(secrets).data(output)
    log_path.write_bytes(output)
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return code, (lines[-1] if lines else "")
