"""Signals a run receives (Ctrl-C, SIGTERM, SIGHUP): recorded by the handler, acted on by the loop."""

from __future__ import annotations

import signal
from typing import Callable, List, Optional


class Signals:
    """Signals received, not yet acted on: the handler only records them and wakes the coordinator."""

    __slots__ = ("first", "pending", "_wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.first: Optional[int] = None  # the one that decides the exit code
        self.pending: List[int] = []  # -1: a second Ctrl-C, kill now
        self._wake = wake

    def receive(self, signum: int, _frame: object = None) -> None:
        if self.first is not None and signum == signal.SIGINT:
            self.pending.append(-1)
        else:
            if self.first is None:
                self.first = signum
            self.pending.append(signum)
        self._wake()


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)
