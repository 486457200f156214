"""Entry point for the `flowmake` console script and `python -m flowmake`."""

from __future__ import annotations

import gc
import os
import sys

from .records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import List, NoReturn, Optional

    from .engine.prescan import Prescan


def main(argv: Optional[List[str]] = None) -> int:
    # Loading and planning make hundreds of thousands of long-lived objects and
    # no garbage cycles; the cyclic collector would rescan them all again and
    # again (a quarter of a 10,000-task run). The build loop turns it back on
    # for the objects it makes (engine/loop.py).
    gc.disable()
    if argv is None:
        _in_utf8_mode()
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # Answered before importing the CLI: scripts call this to probe for flowmake.
        from . import __version__

        print(f"flowmake {__version__}")
        return 0
    if args[:1] == ["__complete"]:
        # The shell's Tab (`flowmake completion SHELL`): answered before typer is imported, never with an error.
        from .cli.completion import main as complete

        return complete(args[1:])
    from .cli.shorthand import expand

    typed = args
    args = expand(typed)  # `flowmake TARGET`, `flowmake -n`: `run`; `status -C dir`: `-C dir status`
    if "status" in args:
        # A well-formed `status` needs no typer either, and overlaps its stat scan with loading.
        from .cli.statuscmd import try_status

        code = try_status(args, process_ends=argv is None)
        if code is not None:
            if argv is None:
                _leave(code)
            return code
    if not args or args[0] in ("run", "-f", "--file", "-C", "--directory") or args[0].startswith("--file=") \
            or args[0].startswith("--directory="):
        code = _run(args, typed=typed, process_ends=argv is None)
        if code is not None:
            if argv is None:
                _leave(code)
            return code
    from .cli.app import main as cli_main

    return cli_main(args, typed=typed)


def _in_utf8_mode() -> None:
    """Run in Python's UTF-8 mode whatever the locale; print in the terminal's own encoding.

    Paths are bytes on POSIX, and a Flowfile (UTF-8 text) names them in
    UTF-8; under a Latin-1 locale Python would encode `données.csv` as
    Latin-1 and find no such file, and crash printing a character the
    locale lacks. So flowmake starts itself again with `-X utf8` (only
    under such a locale: a C or UTF-8 one costs nothing here), and prints
    in the terminal's encoding with unencodable characters replaced.
    Tasks still get the user's locale: the environment is unchanged.
    """
    stdio = sys._xoptions.get("flowmake_stdio")
    if isinstance(stdio, str):  # the second start
        if "PYTHONIOENCODING" not in os.environ:  # the user's explicit choice wins
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.reconfigure(encoding=stdio, errors="replace")  # type: ignore[union-attr]
                except (AttributeError, LookupError, ValueError):
                    pass
        return
    if sys.flags.utf8_mode or sys.getfilesystemencoding().lower().replace("-", "") == "utf8":
        return
    if not sys.executable:
        return
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-X", "utf8", "-X", f"flowmake_stdio={encoding}",
                                  "-m", "flowmake", *sys.argv[1:]])
    except OSError:
        pass  # go on as we are: names outside the locale's encoding may not be found


def _run(args: List[str], *, typed: List[str], process_ends: bool) -> Optional[int]:
    """`flowmake run` without typer: the no-op path, else the full path; None for the CLI to handle.

    `typed`: the arguments as given, for the run's record. `process_ends`:
    _leave follows, so the state database needs no closing.
    """
    from .cli.fastpath import parse, try_noop
    from .cli.guard import exit_code_of

    prescans: List[Prescan] = []  # the no-op path's scan of changed files, for the full path
    code = exit_code_of(lambda: try_noop(args, hand_over=prescans, typed=typed, process_ends=process_ends))
    if code is not None:
        return code
    if process_ends:
        # Imported only now: the no-op path imports the state while its scan runs (fastpath.py).
        from .store.state import keep_open_until_exit

        keep_open_until_exit()
    parsed = parse(args, typed=typed)
    if parsed is None:
        return None  # other commands, --help and bad arguments: the CLI
    # A well-formed `run` needs no typer (~15 ms to import).
    from .cli.commands import run_parsed

    try:
        code = exit_code_of(lambda: run_parsed(parsed, prescan=prescans[0] if prescans else None))
    finally:
        for prescan in prescans:
            prescan.close()
    return code if code is not None else 0


def _leave(code: int) -> NoReturn:
    """End this process now that the run is recorded and reported.

    The interpreter's own exit would free every object of a 10,000-task run
    one by one, ~5 ms of a 60 ms no-op. Only when flowmake owns the process
    (the console script, `python -m flowmake`): by then the state database is
    closed, every task reaped and every log closed, and the streams are
    flushed here.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that went away: the run is recorded all the same
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
