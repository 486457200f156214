"""The local executor: tasks as processes on this machine; their output captured, their ends noticed, stopped.

Each task runs in its own session (spawn.py), so its whole process group can be
signalled, and a Ctrl-C at the terminal reaches flowmake alone, which then
decides. The coordinator's own thread moves the output (stream.py): `wait` copies every
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

import os
import select
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ..removal import remove
from .files import LocalFiles
from .messages import Completion, OutputLine, OutputLines
from .orphans import end_orphans
from .spawn import RunningProcess, Spawner
from .stream import Stream

if TYPE_CHECKING:  # names for type checkers only
    from .messages import Command
    from .protocol import Message

OUTPUT_THROTTLE = 0.2  # seconds between two "latest line" messages of one task
UNREAPED_POLL = 0.005  # seconds between looks at a task that closed its output but has not exited (no pidfd)
EXIT_POLL = 0.05  # seconds between looks at a task whose output is still open, for its exit (no pidfd)
# A line redrawn with carriage returns (a progress bar) is handed to the
# output modes that print lines once it ends, and meanwhile at most once per
# this many seconds: a log gets a line every half minute, not every redraw,
# and is never silent for the ten minutes after which CI services kill a job.
REDRAW_INTERVAL = 30.0


class _Exited(NamedTuple):
    """What a watched pidfd stands for: the task whose process is to be reaped once it exits."""

    stream: Stream


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
        self._streams: Dict[int, Stream] = {}  # output fd -> its stream, until the task completes
        self._new: List[Stream] = []  # started since the last wait: their empty logs are still to make
        self._unwatched: List[Stream] = []  # running without a pidfd: their exits are polled for
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._watched.add(self._wake_r, None)
        self._spawner = Spawner()
        self._empty_log: Optional[str] = None  # the run's first empty log, which later ones link to
        self._host = os.uname().nodename  # where every task ran, as the journal records it

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
        pid, output_fd = self._spawner.spawn(argv, cwd, env, busy=len(self.running))
        proc = RunningProcess(task, pid, time.time(), output_fd)
        self.running[task] = proc
        deadline = time.monotonic() + timeout if timeout is not None else None
        stream = Stream(proc, log_path, secrets, deadline, lines=self._lines, latest=self._latest)
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

    def close(self) -> None:
        """Let go of the wake-up pipe, and go back to the directory flowmake started in."""
        if self._wake_w >= 0:
            # Forgotten first: a late signal's wake() must not write to a closed or reused number.
            wake_fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
            for fd in wake_fds:
                os.close(fd)
        self._spawner.close()

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

    def _output_closed(self, stream: Stream) -> None:
        """Every writer closed the task's output; the task ends when its process exits (its pidfd, or a poll)."""
        self._watched.remove(stream.proc.output_fd)
        stream.eof = True
        stream.close()

    def _end(self, stream: Stream) -> List[Union[OutputLines, Completion]]:
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

    def _unlink_empty_log(self, stream: Stream) -> None:
        """The task prints: its log becomes a file of its own, never written through the shared link."""
        stream.linked = False
        try:
            # The run's own log directory is its boundary: a name in it passes through no link.
            remove(os.path.dirname(stream.log_path), os.path.basename(stream.log_path), boundary="the run's logs")
        except OSError as exc:
            stream.failed_log(exc)  # and never write through the link
        if stream.log_path == self._empty_log:
            self._empty_log = None  # the next silent task starts a new one

    def _completion(self, stream: Stream, returncode: int) -> List[Union[OutputLines, Completion]]:
        """Its last lines (or its whole block), then its completion."""
        ended: List[Union[OutputLines, Completion]] = []
        if stream.lines:
            ended.append(OutputLines(stream.proc.task, *stream.take_lines()))
        proc = stream.proc
        del self._streams[proc.output_fd]
        os.close(proc.output_fd)
        ended.append(Completion(proc.task, returncode, proc.timed_out, proc.started, time.time(),
                                list(stream.tail), stream.log_hash(), stream.log_error, self._host))
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

    def slots(self) -> int:
        return os.cpu_count() or 1

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


def _sooner(timeout: Optional[float], other: float) -> float:
    return other if timeout is None else min(timeout, other)


