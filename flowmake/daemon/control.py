"""`flowmake daemon start|stop|status`: start the resident watcher for a project, ask it, stop it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

from ..errors import UsageError
from ..layout import STATE_DIR, find_flowfile
from .client import ask, socket_path

DEFAULT_IDLE = 3 * 3600.0  # seconds: a working day's pauses, not a machine's lifetime
IDLE_ENV = "FLOWMAKE_DAEMON_IDLE"  # the idle time in seconds, when --idle-exit is not given
READY_TIMEOUT = 30.0  # seconds for a new daemon to verify the snapshot and open its socket


def available() -> None:
    """A usage error naming what is missing, unless this system can run the daemon."""
    if not sys.platform.startswith("linux"):
        raise UsageError("flowmake daemon needs Linux (it watches files with inotify)",
                         hint="without it, `flowmake run` answers a no-op on its own")
    try:
        from . import watches  # noqa: F401  (it imports inotify_simple)
    except ImportError:
        raise UsageError("flowmake daemon needs the 'daemon' extra (inotify_simple)",
                         hint="pip install 'flowmake[daemon]'") from None


def project(file: Optional[Path], directory: Optional[Path]):
    """The Flowfile (absolute) and its root, found as `flowmake run` finds them."""
    cwd = Path(os.path.abspath(directory)) if directory is not None else Path.cwd()
    if not cwd.is_dir():
        raise UsageError(f"no such directory: {directory}")
    flowfile = find_flowfile(cwd, file).resolve()
    return str(flowfile), str(flowfile.parent)


def start(file: Optional[Path], directory: Optional[Path], idle: Optional[float]) -> int:
    available()
    flowfile, root = project(file, directory)
    from ..store.state import ensure_state_dir

    state_dir = str(ensure_state_dir(Path(root)))  # with its .gitignore, as a run makes it
    running = ask(socket_path(state_dir), "status", timeout=2.0)
    if running is not None and running[0] == "status":
        print(f"flowmake daemon already running for {root} (pid {running[1]['pid']})")
        return 0
    if idle is None:
        idle = float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE)
    log = os.path.join(state_dir, "daemon.log")
    # In UTF-8 mode, as every flowmake run is (__main__._in_utf8_mode): paths decode as its clients' do.
    pid = _spawn([sys.executable, "-X", "utf8", "-m", "flowmake.daemon", root, flowfile, repr(idle)], log, root)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        reply = ask(socket_path(state_dir), "status", timeout=2.0)
        if reply is not None and reply[0] == "status":
            status = reply[1]
            note = "" if status["proven"] else f"; not answering yet: {status['why_not']}"
            print(f"flowmake daemon started for {root} (pid {status['pid']}, exits after {_span(idle)} idle{note})")
            return 0
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            raise UsageError(f"flowmake daemon did not start: {_last_line(log)}", file=log)
        time.sleep(0.02)
    raise UsageError("flowmake daemon did not answer in time", file=log)


def _spawn(argv, log: str, cwd: str) -> int:
    """The daemon in a session of its own, its output to `log`, detached from the terminal."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execv(argv[0], argv)
    finally:
        os._exit(127)


def status(file: Optional[Path], directory: Optional[Path]) -> int:
    """Exit 0 and a line about it when a daemon runs for the project, 1 when none does."""
    flowfile, root = project(file, directory)
    reply = ask(socket_path(os.path.join(root, STATE_DIR)), "status", timeout=5.0)
    if reply is None or reply[0] != "status":
        print(f"no flowmake daemon running for {root}")
        return 1
    s = reply[1]
    state = f"answering the no-op ({s['files']} files watched)" if s["proven"] else f"not answering: {s['why_not']}"
    print(f"flowmake daemon running for {root} (pid {s['pid']}, up {_span(time.time() - s['started'])}, "
          f"exits after {_span(s['idle_exit'])} idle): {state}; {s['answered']} of {s['requests']} runs answered")
    return 0


def stop(file: Optional[Path], directory: Optional[Path]) -> int:
    flowfile, root = project(file, directory)
    reply = ask(socket_path(os.path.join(root, STATE_DIR)), "stop", timeout=5.0)
    if reply is None or reply[0] != "stopping":
        print(f"no flowmake daemon running for {root}")
        return 0
    pid = reply[1]
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.01)
    print(f"flowmake daemon stopped for {root} (pid {pid})")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie has ended
    except (OSError, IndexError):
        return True


def _last_line(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        return lines[-1] if lines else "no output"
    except OSError:
        return "no log"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds}s"
