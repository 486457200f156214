"""Starting processes: a task's command (posix_spawn, in its own session), a hook's, and their handles.

Each task runs in its own session, so its whole process group can be
signalled and a Ctrl-C at the terminal reaches flowmake alone, which then
decides. `Spawner` keeps what starting many tasks in a row can share: the
executables found on each PATH, the coordinator's working directory, an
open /dev/null.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..masking import Mask
from .shellfree import is_plain_sh, simple_command


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


class Spawner:
    """Starts task processes; `close` when the run's tasks are done."""

    def __init__(self) -> None:
        self._executables: Dict[Tuple[str, Optional[str]], Optional[str]] = {}
        self._system_sh: Dict[Optional[str], bool] = {}  # PATH -> its `sh` is /bin/sh
        self._pwds: Dict[Tuple[Optional[str], Optional[str]], str] = {}  # (inherited PWD, cwd) -> PWD as sh sets it
        self._devnull: Optional[int] = None
        self._home: Optional[str] = None  # the directory to go back to
        self._cwd: Optional[str] = None  # the directory the coordinator moved into
        self._cpus = _usable_cpus()

    def spawn(self, argv: Sequence[str], cwd: str, env: Mapping[str, str], *, busy: int) -> Tuple[int, int]:
        """Start argv in a new session, stdin /dev/null, stdout and stderr into a new pipe: (pid, its read end).

        `busy`: how many tasks run already (see _yield_cpu).

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
        if busy + 1 < self._cpus:  # a CPU is left for the coordinator to move to
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


# Linux starts a spawned child on its parent's CPU, where the parent, woken
# by the child's exec, runs first: yielding once lets the child start at once
# and the coordinator move to an idle CPU. With no CPU idle the yield only
# queues the coordinator behind a task, so it is done only when one is left
# (benchmarks/README.md, "Results of 2026-11-30", has the measurements).
_yield_cpu = getattr(os, "sched_yield", lambda: None)


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's limit), else all of them."""
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
