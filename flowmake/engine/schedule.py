"""The ready-queue: which selected tasks may start now, and what a failure skips.

Pure bookkeeping over the dependency edges of the selected tasks; it knows
nothing of processes or hashes. A task becomes ready when all its
dependencies finished well (ran or were fresh). When one fails, everything
downstream of it is skipped; without keep-going, nothing new starts at all.
"""

from __future__ import annotations

import heapq
from typing import Dict, List, Mapping, Sequence, Set, Tuple


class Schedule:
    def __init__(
        self,
        order: Sequence[str],
        deps: Mapping[str, Sequence[str]],
        *,
        keep_going: bool = False,
    ) -> None:
        selected = set(order)
        self._position = {name: i for i, name in enumerate(order)}
        self._waiting: Dict[str, int] = {}
        self._users: Dict[str, List[str]] = {name: [] for name in order}
        for name in order:
            mine = [d for d in deps.get(name, ()) if d in selected]
            self._waiting[name] = len(mine)
            for dep in mine:
                self._users[dep].append(name)
        self._ready: List[Tuple[int, str]] = [(self._position[n], n) for n in order if self._waiting[n] == 0]
        heapq.heapify(self._ready)
        self._keep_going = keep_going
        self._open: Set[str] = set(order)  # not yet finished or skipped
        self.stopped = False  # a failure (without -k) or an interrupt ended new starts

    def pop_ready(self) -> List[str]:
        """Take every task that may start now, in declaration order."""
        if self.stopped:
            return []
        out = [heapq.heappop(self._ready)[1] for _ in range(len(self._ready))]
        return out

    def has_ready(self) -> bool:
        return not self.stopped and bool(self._ready)

    def succeeded(self, name: str) -> None:
        self._open.discard(name)
        for user in self._users[name]:
            self._waiting[user] -= 1
            if self._waiting[user] == 0 and user in self._open:
                heapq.heappush(self._ready, (self._position[user], user))

    def failed(self, name: str) -> List[str]:
        """Record a failure; returns the downstream tasks now skipped, in order."""
        self._open.discard(name)
        if not self._keep_going:
            self.stopped = True
        skipped: List[str] = []
        stack = list(self._users[name])
        while stack:
            user = stack.pop()
            if user in self._open:
                self._open.discard(user)
                skipped.append(user)
                stack.extend(self._users[user])
        skipped.sort(key=self._position.__getitem__)
        return skipped

    def stop(self) -> None:
        self.stopped = True

    def unfinished(self) -> List[str]:
        """Tasks never started or finished (after a stop), in order."""
        return sorted(self._open, key=self._position.__getitem__)

    @property
    def done(self) -> bool:
        return not self._open
