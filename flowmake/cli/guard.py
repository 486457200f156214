"""How a command's outcome becomes an exit code.

Shared by the typer CLI (cli.py) and the `run` paths that answer before
typer is imported (__main__.py): a `FlowError` is rendered once on stderr
with its exit code; a reader that went away (`| head`) ends the command
quietly with 141, as SIGPIPE would; anything else is a bug, reported in one
line with the path of the written traceback (exit 70).
"""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..errors import EXIT_INTERNAL, EXIT_SIGINT, EXIT_SIGPIPE, FlowError
from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Callable, Optional


def exit_code_of(command: Callable[[], Optional[int]]) -> Optional[int]:
    """The command's own exit code (None if it returned none), or the one its error calls for."""
    try:
        code = command()
    except FlowError as exc:
        sys.stdout.flush()
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        discard_stdout()  # and keep Python from complaining at exit
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except Exception:
        return internal_error()
    return code


def internal_error() -> int:
    import tempfile  # only a bug gets here: these cost every run 4 ms to import
    import traceback

    fd, path = tempfile.mkstemp(prefix="flowmake-crash-", suffix=".txt")
    # UTF-8 with escapes, whatever the locale: the report of a crash must not crash itself.
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(f"flowmake {__version__}\nargv: {sys.argv!r}\n\n")
        traceback.print_exc(file=f)
    exc = sys.exc_info()[1]
    message = (f"flowmake: internal error (a bug in flowmake, not in your Flowfile): {type(exc).__name__}: {exc}; "
               f"traceback written to {path}")
    try:
        print(message, file=sys.stderr)
    except UnicodeError:
        print(message.encode("ascii", "backslashreplace").decode("ascii"), file=sys.stderr)
    return EXIT_INTERNAL


def survive_closed_pipe(reporter, files=()):  # type: ignore[no-untyped-def]
    """The reporter's handle(), for a run that must go on when its reader goes away (`| head`).

    The tasks still finish and are recorded; only the progress output is lost.
    `files` are reporters that write files (JUnit XML, a CI summary): they get
    every event whatever becomes of stdout. A TasksFresh goes as it is to a
    reporter that takes it (`takes_tasks_fresh`), as its task_finished events
    to any other.
    """
    from ..events import TasksFresh

    closed = False

    def emit(event) -> None:  # type: ignore[no-untyped-def]
        nonlocal closed
        if event.__class__ is TasksFresh:
            for sink in (*files, reporter):
                if not (sink is reporter and closed):
                    _bulk(sink, event)
            return
        for sink in files:
            sink.handle(event)
        if closed:
            return
        try:
            reporter.handle(event)
        except BrokenPipeError:
            closed = True
            discard_stdout()

    def _bulk(sink, event) -> None:  # type: ignore[no-untyped-def]
        nonlocal closed
        try:
            if getattr(sink, "takes_tasks_fresh", False):
                sink.handle(event)
            else:
                for finished in event.each():
                    sink.handle(finished)
        except BrokenPipeError:
            if sink is not reporter:
                raise
            closed = True
            discard_stdout()

    emit.takes_tasks_fresh = True  # type: ignore[attr-defined]
    return emit


def discard_stdout() -> None:
    """Point stdout at /dev/null once its reader is gone, so no later write or
    the final flush at exit fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
