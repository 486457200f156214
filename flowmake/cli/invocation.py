"""One invocation of the command line: the global -f and -C, the arguments as typed, and the guard.

Every typer command (app.py, history_app.py, schedule_app.py) runs under
`guarded`, which renders user errors once and turns anything unexpected
into exit 70 (guard.py), and finds its project through `load_project` or
`history_root`, from the global options `app`'s callback stored here.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer

from .guard import exit_code_of

F = TypeVar("F", bound=Callable[..., object])


class Invocation:
    def __init__(self, file: Optional[Path], directory: Optional[Path]) -> None:
        self.file = file
        self.directory = directory
        self.typed: List[str] = sys.argv[1:]  # the arguments as given, for the run's record


invocation = Invocation(None, None)  # set by app's callback, before any command runs


def guarded(func: F) -> F:
    """Render user errors once; turn anything unexpected into exit 70 (guard.py)."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        code = exit_code_of(lambda: func(*args, **kwargs))  # type: ignore[arg-type, return-value]
        raise typer.Exit(code if code is not None else 0)

    return wrapper  # type: ignore[return-value]


def load_project():
    """The project -f and -C name, loaded (the Flowfile, its graph, its root)."""
    from .commands import Project

    return Project.load(file=invocation.file, directory=invocation.directory)


def history_root() -> Path:
    """For the commands that read only the state: found without loading the Flowfile."""
    from .commands import history_root as find_root

    return find_root(file=invocation.file, directory=invocation.directory)
