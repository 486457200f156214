"""One running task's output on its way to its log: masked, hashed, its tail kept, its lines handed over.

Fed by the runner (local.py) with whatever its pipe gave; a secret value
is never cut in two between writes, so the log never holds part of one.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, BinaryIO, Deque, List, Optional, Sequence, Tuple

from blake3 import blake3

from ..masking import Mask

if TYPE_CHECKING:  # names for type checkers only
    from .spawn import RunningProcess

TAIL_LINES = 20
MAX_PARTIAL = 1 << 16  # a line longer than this is written before its end arrives
NO_MASK = Mask(())
EMPTY_HASH = blake3().hexdigest()  # an empty log's, computed once rather than for each silent task
BLOCK_LINES = 10_000  # lines of a task's output kept for `--output group`; earlier ones are only in its log


class Stream:
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
        self._digest: Optional[blake3] = None  # made with the first byte: most trivial tasks print none
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

    def log_hash(self) -> str:
        """The hash of what the log holds (masked): its bytes so far."""
        return EMPTY_HASH if self._digest is None else self._digest.hexdigest()

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
        if self._digest is None:
            self._digest = blake3()
        self._digest.update(chunk)
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
