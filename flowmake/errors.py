"""The one exception hierarchy and the process exit codes.

Every mistake a user can make is a `FlowError`: it carries where it happened
(file, line, column) and a hint, and the CLI renders it once, in one place,
as `FILE:LINE:COL: error: MESSAGE` plus `hint: ...`, then exits with the
error's `exit_code`. Anything that is not a `FlowError` is a bug (exit 70).
"""

from __future__ import annotations

from .records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Iterable, Optional, Sequence

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_INTERNAL = 70
EXIT_SIGHUP = 129
EXIT_SIGPIPE = 141  # the output's reader went away
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Location(NamedTuple):
    file: str | Path | None = None
    line: Optional[int] = None
    col: Optional[int] = None

    def __str__(self) -> str:
        parts = [str(self.file)] if self.file is not None else []
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


class FlowError(Exception):
    """A user-facing error: bad Flowfile, bad arguments, unknown target."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: Optional[int] = None,
        col: Optional[int] = None,
        hint: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = Location(file, line, col)
        self.hint = hint

    def render(self) -> str:
        where = str(self.location)
        text = f"{where}: error: {self.message}" if where else f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class FlowfileError(FlowError):
    """The Flowfile is invalid (syntax, schema, placeholders, graph)."""


class FlowfileErrors(FlowError):
    """Several problems found in one pass (what `flowmake check` prints)."""

    def __init__(self, errors: Sequence[FlowError]) -> None:
        assert errors, "FlowfileErrors needs at least one error"
        self.errors = list(errors)
        super().__init__(self.errors[0].message)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


class UsageError(FlowError):
    """Bad command-line use: unknown target, bad option value."""


class TrailDamagedError(FlowError):
    """A journal record cannot be read back: the audit trail was tampered with or damaged."""

    exit_code = EXIT_TASK_FAILED


class StateDamagedError(FlowError):
    """The state database cannot be read back (a disk fault, a bad copy): a reading command stops here."""


class LockHeldError(FlowError):
    """Another flowmake run holds this project's lock."""

    exit_code = EXIT_LOCKED


NOT_UTF8_HINT = ("flowmake records every path as UTF-8 text (the audit trail must name it exactly); rename the file, "
                 "e.g. `convmv -f latin1 -t utf8 --notest FILE`")


def not_utf8(path: str) -> Optional[str]:
    """`path` with its undecodable bytes shown as \\xNN if the name on disk is not UTF-8, else None.

    Python hands such names over with surrogate escapes (PEP 383); they
    cannot be stored, hashed or printed as text.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return None


def did_you_mean(word: str, choices: Iterable[str]) -> Optional[str]:
    """A 'did you mean X?' hint for the closest choice, or None."""
    import difflib  # only on the error path: keeps start-up lean

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
