"""A Dask worker's watchdog: kills the process groups of its running commands when the worker dies.

Started once per worker process by remote.py (`python -m
flowmake.executors.dask.watchdog`, in a session of its own), it reads
`+PID` (a command started, in its own process group) and `-PID` (reaped)
lines from its stdin, a pipe whose other end only the worker holds. When
that pipe closes, the worker is gone, however it died (kill -9, the
out-of-memory killer, a crash): every group still listed gets SIGKILL, so
no command of a dead worker goes on writing outputs while its retry runs
elsewhere. A worker that closes normally has reaped its commands first.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    groups = set()
    for line in sys.stdin.buffer:
        text = line.strip().decode("ascii", "replace")
        if text[:1] == "+" and text[1:].isdigit():
            groups.add(int(text[1:]))
        elif text[:1] == "-" and text[1:].isdigit():
            groups.discard(int(text[1:]))
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the worker's terminal is the worker's to handle
    main()
