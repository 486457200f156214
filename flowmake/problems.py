"""The problems of one load, collected rather than raised, and how they word values.

A user mistake does not stop loading: every reader reports into one
`Problems`, which places each problem at the line of the key it concerns
(through `LineIndex`) and drops repeats, because matrix variants repeat
their table's mistakes. The wording helpers here (`toml_type`, `describe`,
`check_keys`) keep messages about wrong values and unknown keys alike
across the Flowfile's tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Set, Tuple

from .errors import FlowfileError, did_you_mean
from .locate import LineIndex


class Problems:
    """Every problem found, deduplicated (matrix variants repeat a table's mistakes)."""

    def __init__(self, path: Path, index: LineIndex) -> None:
        self.path = path
        self.index = index
        self._errors: List[FlowfileError] = []
        self._seen: Set[Tuple[str, Optional[int]]] = set()

    def add(self, message: str, *, at: Sequence[str] = (), hint: Optional[str] = None, col: bool = False) -> None:
        line, column = self.index.find(at)
        self.add_error(FlowfileError(message, file=self.path, line=line, col=column if col else None, hint=hint))

    def add_error(self, error: FlowfileError) -> None:
        key = (error.message, error.location.line)
        if key not in self._seen:
            self._seen.add(key)
            self._errors.append(error)

    def line(self, at: Sequence[str]) -> Optional[int]:
        return self.index.find(at)[0]

    def in_file_order(self) -> List[FlowfileError]:
        # File order reads best; errors with no line go last.
        return sorted(self._errors, key=lambda e: (e.location.line is None, e.location.line or 0))


def toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return next((n for t, n in names.items() if isinstance(value, t)), "date/time")


def describe(value: object) -> str:
    """A type description that names the offending item of an array."""
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        if bad is not None:
            kind = toml_type(bad)
            return f"an array holding {'an' if kind[0] in 'aei' else 'a'} {kind}"
    return toml_type(value)


def is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_keys(
    table: Mapping[str, Any], valid: Sequence[str], *, problems: Problems, at: Tuple[str, ...], label: str
) -> None:
    for key in table:
        if key not in valid:
            hint = did_you_mean(key, valid) or f"valid keys: {', '.join(sorted(valid))}"
            problems.add(f"{label}unknown key `{key}`", at=at + (key,), hint=hint, col=True)
