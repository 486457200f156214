"""Durations as Flowfile authors write them, turned into seconds.

`timeout`, `retry_delay`, `wait_timeout` and `wait_poll` take either a number
of seconds or a string of number-and-unit parts such as "90s", "10m", "2h",
"500ms", "1d" or "1h30m". Anything else ("10 minutes", "-5s", "90") is a
`FlowfileError` that points at the Flowfile line and shows the accepted forms,
because a silently misread timeout is worse than a refused one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

from ..errors import FlowfileError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# "ms" must come before "m" in the alternation, or "500ms" reads as 500m + "s".
_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_PART_RE = re.compile(_PART)
_DURATION_RE = re.compile(rf"(?:{_PART}[ \t]*)+")

DURATION_HINT = 'write a number of seconds or a string such as "90s", "10m", "2h", "500ms", "1d" or "1h30m"'


def parse_duration(
    value: object,
    *,
    file: Optional[Path] = None,
    line: Optional[int] = None,
    what: str = "duration",
) -> float:
    """Seconds for `value`; `what` names the setting in the error message."""
    # bool is an int subclass in Python, but `timeout = true` is a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FlowfileError(
            f"{what} must be a duration, got {type(value).__name__}", file=file, line=line, hint=DURATION_HINT
        )
    if isinstance(value, str):
        seconds = _parse_text(value, file=file, line=line, what=what)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise FlowfileError(
            f"{what} must be a positive duration, got {value!r}", file=file, line=line, hint=DURATION_HINT
        )
    return seconds


def _parse_text(text: str, *, file: Optional[Path], line: Optional[int], what: str) -> float:
    stripped = text.strip()
    if not _DURATION_RE.fullmatch(stripped):
        hint = DURATION_HINT
        if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
            hint = f'add a unit ("{stripped}s") or write the number without quotes'
        raise FlowfileError(f'{what} is not a duration: "{text}"', file=file, line=line, hint=hint)
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(stripped))
