"""The resident process: one project's watches, its socket, and the loop that answers and ends it.

Started by `flowmake daemon start` (control.py) as `python -m flowmake.daemon
ROOT FLOWFILE IDLE_SECONDS`. One daemon per project: it holds an flock on
`.flowmake/daemon.lock` for its whole life. It ends when asked (`stop`), when
no request came for IDLE_SECONDS, when its socket, its state directory or
the project directory is deleted or moved, when a client of another version
asks, and on SIGTERM/SIGINT/SIGHUP; it removes its socket on the way out.
"""

from __future__ import annotations

import fcntl
import gc
import os
import select
import signal
import socket
import struct
import sys
import time

from .. import __version__
from ..engine.snapshot import SNAPSHOT_NAME
from ..layout import STATE_DIR
from ..store import state as states
from .answer import answer_run
from .client import SOCKET_NAME, connect, read_message, send_message, socket_path
from .proof import Proof
from .watches import Watches

LOCK_NAME = "daemon.lock"
QUIET = 0.05  # seconds without events before it re-verifies on its own (a request re-verifies at once)
CHECK_EVERY = 30.0  # seconds: the socket and the project directory are still the daemon's own


class Server:
    def __init__(self, root: str, flowfile: str, idle: float) -> None:
        self.root, self.flowfile, self.idle = root, flowfile, idle
        self.state_dir = os.path.join(root, STATE_DIR)
        self.started = time.time()
        self.last_request = time.monotonic()
        self.requests = self.answered = 0
        self.running = True
        self.ending = ""
        self.watches = Watches(root, self.state_dir, frozenset({SOCKET_NAME, LOCK_NAME}),
                               frozenset({SNAPSHOT_NAME}))
        self.proof = Proof(root, flowfile, self.watches)
        self.proof.verify()  # the watches of the root and state directory are in place already
        self.verify_at = None
        self.listener, self.socket_id = self._listen()

    def _listen(self):
        path = socket_path(self.state_dir)
        tmp = f"{path}.tmp-{os.getpid()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket: this user's alone (and SO_PEERCRED checks who connects)
        try:
            connect(listener, tmp, bind=True)
        finally:
            os.umask(old)
        listener.listen(16)
        os.replace(tmp, path)  # a client sees the old socket (refused: no one listens) or this one
        st = os.stat(path)
        return listener, (st.st_dev, st.st_ino)

    def serve(self) -> str:
        """Answer until the daemon ends; why it ended."""
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.watches.fileno(), select.POLLIN)
        next_check = time.monotonic() + CHECK_EVERY
        while self.running:
            now = time.monotonic()
            deadline = min(self.last_request + self.idle, next_check,
                           self.verify_at if self.verify_at is not None else next_check)
            ready = poller.poll(max(0.0, deadline - now) * 1000)
            now = time.monotonic()
            for fd, _ in ready:
                if fd == self.watches.fileno():
                    if self.watches.drain():
                        self.proof.stale = True
                        self.verify_at = now + QUIET
                else:
                    self._accept()
            if self.watches.gone:
                return "its project or state directory went away"
            if self.verify_at is not None and now >= self.verify_at:
                self.verify_at = None
                self.proof.refresh()
                gc.collect()
            if now >= next_check:
                next_check = now + CHECK_EVERY
                if not self._still_own():
                    return "its socket or project directory was replaced"
            if now - self.last_request >= self.idle:
                return f"idle for {self.idle:g} s"
        return self.ending

    def _still_own(self) -> bool:
        try:
            st = os.stat(socket_path(self.state_dir))
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.socket_id and self.proof.root_id is not None \
            and os.path.isdir(self.root)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5.0)
            try:
                self._handle(conn)
            except (OSError, EOFError, ValueError, TypeError):
                pass  # a client gone or confused: it falls back on its own
        gc.collect()  # between requests, not during one: a run makes no cycles (__main__.py)

    def _handle(self, conn: socket.socket) -> None:
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            return  # the socket is 0600; this is a second lock on the door
        first, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        try:
            import marshal

            request = marshal.loads(read_message(conn, first))
            self.last_request = time.monotonic()
            send_message(conn, self._reply(request, fds, conn))
        finally:
            # The run's connection, closed only now: closing checkpoints the WAL (fsyncs) the client need not wait for.
            _close_kept_open()
            for fd in fds:
                try:
                    os.close(fd)  # answer_run closed those it used; the rest are closed here
                except OSError:
                    pass

    def _reply(self, request, fds, conn: socket.socket) -> tuple:
        if not isinstance(request, tuple) or len(request) < 2:
            return ("decline", "unreadable request")
        command, version = request[0], request[1]
        if version != __version__:
            self.running, self.ending = False, f"a client of version {version} asked"
            return ("decline", "another version")
        if command == "status":
            return ("status", self.status())
        if command == "stop":
            self.running, self.ending = False, "asked to stop"
            return ("stopping", os.getpid())
        if command == "run" and len(request) == 8:
            self.requests += 1
            reply = answer_run(self.proof, request, list(fds), still_asked=lambda: _waiting(conn))
            fds.clear()  # answer_run owns them now
            if reply[0] == "done":
                self.answered += 1
            return reply
        return ("decline", "unknown request")

    def status(self) -> dict:
        self.proof.refresh()
        snap = self.proof.snap
        return {"pid": os.getpid(), "version": __version__, "root": self.root, "flowfile": self.flowfile,
                "started": self.started, "idle_exit": self.idle, "requests": self.requests,
                "answered": self.answered, "proven": snap is not None,
                "files": len(snap.files.paths) if snap is not None else 0,
                "watches": len(self.watches.names), "why_not": self.proof.why_not}

    def close(self) -> None:
        try:
            st = os.stat(socket_path(self.state_dir))
            if (st.st_dev, st.st_ino) == self.socket_id:
                os.unlink(socket_path(self.state_dir))
        except OSError:
            pass
        self.listener.close()
        self.watches.close()


def _waiting(conn: socket.socket) -> bool:
    """Whether the client is still there: it sends nothing more, so anything readable is its end."""
    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLHUP)
    if not poller.poll(0):
        return True
    try:
        return conn.recv(1, socket.MSG_PEEK) != b""  # readable: does not block
    except OSError:
        return False


def _close_kept_open() -> None:
    """The connections State.close kept open (keep_open_until_exit) for a process that ends at once: this one does not."""
    kept = states._kept_open
    while kept:
        kept.pop().close()


def _warm() -> None:
    """Import now what a no-op run imports as it goes (cli/fastpath.py's _NoopRun), not in the first request."""
    from ..engine import plan, recorder, tally  # noqa: F401
    from ..report import jsonl, make_reporter, plain  # noqa: F401
    from ..report import front  # noqa: F401
    from ..store import state  # noqa: F401


def main(argv) -> int:
    root, flowfile, idle = argv[0], argv[1], float(argv[2])
    state_dir = os.path.join(root, STATE_DIR)
    lock_fd = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("flowmake daemon: another daemon already watches this project", file=sys.stderr)
        return 1
    gc.disable()
    states.keep_open_until_exit()  # State.close leaves the connection to _close_kept_open, after the reply
    _warm()
    server = Server(root, flowfile, idle)

    def end(signum, frame) -> None:
        server.running, server.ending = False, f"signal {signum}"

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, end)
    try:
        why = server.serve()
    finally:
        server.close()
    print(f"flowmake daemon {os.getpid()}: stopped: {why}", file=sys.stderr)
    return 0
