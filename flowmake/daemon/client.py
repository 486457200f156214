"""The client's side of the daemon's socket: what `flowmake run` asks, and `daemon status|stop`.

Imported by the no-op fast path only once the socket file exists, and kept
to the standard library's C socket module and marshal. One request per connection:
a length-prefixed marshal of the request, the client's stdout and stderr
passed along with it (SCM_RIGHTS), so that the daemon writes the run's
output exactly where the client would have; one marshal back. Any failure
(no daemon behind the socket, a timeout, a reply that cannot be read) is
None: the caller takes the ordinary path, and says nothing.
"""

from __future__ import annotations

import _socket  # socket.py's IntEnums and selectors cost a no-op ~3 ms to import; its C core is all this needs
import marshal
import os
import sys
from array import array

from .. import __version__

SOCKET_NAME = "daemon.sock"  # in the state directory
REPLY_TIMEOUT = 10.0  # seconds: re-verifying 100,000 files takes well under one


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


def ask_run(path: str, argv, typed, flowfile: str, version: str = __version__):
    """The exit code of the no-op run the daemon made, or None: it declined, or it could not be asked."""
    streams = (sys.stdout, sys.stderr)
    encodings = tuple((getattr(s, "encoding", None), getattr(s, "errors", None)) for s in streams)
    request = ("run", version, list(argv), list(typed), os.getcwd(), flowfile, dict(os.environ), encodings)
    reply = _exchange(path, request, fds=(1, 2))
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "done" and isinstance(reply[1], int):
        return reply[1]
    return None


def ask(path: str, command: str, timeout: float = REPLY_TIMEOUT):
    """`status` or `stop`: the daemon's reply (a tuple), or None when no daemon answers."""
    return _exchange(path, (command, __version__), fds=(), timeout=timeout)


def _exchange(path: str, request, *, fds, timeout: float = REPLY_TIMEOUT):
    payload = marshal.dumps(request)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        connect(sock, path)
        message = len(payload).to_bytes(4, "little") + payload
        if fds:  # as socket.send_fds: the descriptors ride with the first bytes (SCM_RIGHTS)
            sent = sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array("i", fds))])
            if sent < len(message):
                sock.sendall(message[sent:])
        else:
            sock.sendall(message)
        return marshal.loads(read_message(sock))
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        sock.close()


def connect(sock, path: str, bind: bool = False) -> None:
    """Connect (or bind) to `path`; by its name from inside its directory when it is longer than
    a socket address holds (108 bytes on Linux): deep project directories are common."""
    if len(os.fsencode(path)) < 100:
        (sock.bind if bind else sock.connect)(path)
        return
    here = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        (sock.bind if bind else sock.connect)(os.path.basename(path))
    finally:
        os.chdir(here)


def read_message(sock, first: bytes = b"") -> bytes:
    """One length-prefixed message (`first`: what was already received of it)."""
    data = bytearray(first)
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "little"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise EOFError("the other side closed the connection mid-message")
        data += chunk
    return bytes(data[4:4 + int.from_bytes(data[:4], "little")])


def send_message(sock, value) -> None:
    payload = marshal.dumps(value)
    sock.sendall(len(payload).to_bytes(4, "little") + payload)
