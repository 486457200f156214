"""`wait_for` sensors: tasks waiting for files to arrive and hold still before they start.

A file has arrived once it exists and its size and mtime held across one
poll (or it was last written more than a poll ago). Polled by the loop
between its other work, through the executor's file system, so a sensor
needs no thread and no process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # names for type checkers only
    from ..model import TaskSpec


class _Sensor:
    """A `wait_for` task waiting for its files to arrive and hold still."""

    __slots__ = ("spec", "deadline", "next_poll", "seen", "pending", "started")

    def __init__(self, spec: TaskSpec, now: float) -> None:
        self.spec = spec
        self.deadline = now + spec.wait_timeout  # monotonic
        self.next_poll = now
        self.seen: Dict[str, Optional[Tuple[int, int]]] = {p: None for p in spec.wait_for}  # (size, mtime_ns)
        self.pending: Tuple[str, ...] = ()  # not yet arrived, as last reported
        self.started = time.time()  # wall clock


class Sensors:
    def __init__(self, stat_pair: Callable[[str], Optional[Tuple[int, int]]]) -> None:
        self._stat_pair = stat_pair
        self._waiting: Dict[str, _Sensor] = {}
        self.arrived: set = set()  # tasks whose files all arrived
        self.waited: Dict[str, Tuple[float, float]] = {}  # task -> wall-clock wait, for its record

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def begin(self, spec: TaskSpec) -> None:
        self._waiting[spec.name] = _Sensor(spec, time.monotonic())

    def soonest(self) -> float:
        """The monotonic time of the next poll or deadline (only while some are waiting)."""
        return min(min(s.next_poll, s.deadline) for s in self._waiting.values())

    def poll(self, now: float) -> List[Tuple[str, str, object]]:
        """Look at the sensors due, in the order they began: (task, what, detail) for each that has news.

        `what` is "arrived" (detail None), "timed out" (detail: the failure's
        message) or "waiting" (detail: the files not there yet, when they changed).
        """
        news: List[Tuple[str, str, object]] = []
        for name, sensor in list(self._waiting.items()):
            if now < sensor.next_poll and now < sensor.deadline:
                continue
            pending = self._pending(sensor)
            if not pending or now >= sensor.deadline:
                del self._waiting[name]
                self.waited[name] = (sensor.started, time.time())
            if not pending:
                self.arrived.add(name)
                news.append((name, "arrived", None))
            elif now >= sensor.deadline:
                missing = [p for p in pending if sensor.seen[p] is None]
                detail = ("still missing " + ", ".join(missing)) if missing else \
                    ("still changing " + ", ".join(pending))
                news.append((name, "timed out", f"wait_for timed out after {sensor.spec.wait_timeout:g}s: {detail}"))
            else:
                if tuple(pending) != sensor.pending:
                    sensor.pending = tuple(pending)
                    news.append((name, "waiting", sensor.pending))
                sensor.next_poll = now + sensor.spec.wait_poll
        return news

    def _pending(self, sensor: _Sensor) -> List[str]:
        spec = sensor.spec
        pending = []
        wall = time.time()
        for path in spec.wait_for:
            seen = self._stat_pair(path)
            before = sensor.seen[path]
            sensor.seen[path] = seen
            if seen is None:
                pending.append(path)
            elif seen != before and wall - seen[1] / 1e9 < spec.wait_poll:
                pending.append(path)  # still being written: wait one more quiet poll
        return pending
