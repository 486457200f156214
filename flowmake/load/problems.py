"""The problems of one load, collected rather than raised, and how they word values.

A user mistake does not stop loading: every reader reports into one
`Problems`, which places each problem at the line of the key it concerns
(through `LineIndex`) and drops repeats, because matrix variants repeat
their table's mistakes. The wording helpers here (`toml_type`, `describe`,
`check_keys`) keep messages about wrong values and unknown keys alike
across the Flowfile's tables.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..errors import FlowfileError, did_you_mean
from .locate import LineIndex


class Problems:
    """Every problem found, deduplicated (matrix variants repeat a table's mistakes).

    A Flowfile with includes is several files: each is a *part* (0 the main
    file) with its own line index, and a task, var or env entry is placed in
    the part that declared it (`own`), so that a reader reporting at
    ("tasks", NAME, KEY) need not know which file that is.
    """

    def __init__(self, path: Path, index: LineIndex) -> None:
        self.path = path  # the main Flowfile
        self.index = index
        self._parts: List[Tuple[Path, LineIndex]] = [(path, index)]
        self._owners: Dict[Tuple[str, ...], int] = {}  # ("tasks", NAME) -> part, for parts other than 0
        self._errors: List[FlowfileError] = []
        self._seen: Set[Tuple[str, str, Optional[int]]] = set()

    def add_file(self, path: Path, index: LineIndex) -> int:
        """A new part (an included file); its number."""
        self._parts.append((path, index))
        return len(self._parts) - 1

    def own(self, at: Tuple[str, ...], part: int) -> None:
        """Place problems at `at` (a (table, name) pair) and below it in `part`."""
        self._owners[at] = part

    def _part(self, at: Sequence[str], part: Optional[int]) -> Tuple[Path, LineIndex]:
        if part is None:
            part = self._owners.get(tuple(at[:2]), 0) if self._owners else 0
        return self._parts[part]

    def add(self, message: str, *, at: Sequence[str] = (), hint: Optional[str] = None, col: bool = False,
            part: Optional[int] = None) -> None:
        path, index = self._part(at, part)
        line, column = index.find(at)
        self.add_error(FlowfileError(message, file=path, line=line, col=column if col else None, hint=hint))

    def add_error(self, error: FlowfileError) -> None:
        key = (error.message, str(error.location.file), error.location.line)
        if key not in self._seen:
            self._seen.add(key)
            self._errors.append(error)

    def line(self, at: Sequence[str], *, part: Optional[int] = None) -> Optional[int]:
        return self._part(at, part)[1].find(at)[0]

    def task_line(self, name: str) -> Optional[int]:
        """The line of task `name`'s table, in the file that declares it (asked for every task: cheap)."""
        return self._part(("tasks", name), None)[1].task_line(name)

    def file(self, at: Sequence[str]) -> Path:
        """The file `at` is in."""
        return self._part(at, None)[0]

    def in_file_order(self) -> List[FlowfileError]:
        # File order reads best (the main file first, then the included ones); errors with no line go last.
        order = {str(path): i for i, (path, _) in enumerate(self._parts)}
        return sorted(self._errors, key=lambda e: (order.get(str(e.location.file), 0), e.location.line is None,
                                                   e.location.line or 0))


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
    return isinstance(value, list) and all(map(isinstance, value, itertools.repeat(str)))  # map: no Python frame per item


def check_keys(
    table: Mapping[str, Any], valid: Sequence[str], *, problems: Problems, at: Tuple[str, ...], label: str
) -> None:
    if all(map(valid.__contains__, table)):
        return  # the usual table, checked in C
    for key in table:
        if key not in valid:
            hint = did_you_mean(key, valid) or f"valid keys: {', '.join(sorted(valid))}"
            problems.add(f"{label}unknown key `{key}`", at=at + (key,), hint=hint, col=True)
