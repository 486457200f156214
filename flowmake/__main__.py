"""Entry point for the `flowmake` console script and `python -m flowmake`."""

from __future__ import annotations

import gc
import sys

from .records import TYPE_CHECKING

if TYPE_CHECKING:  # typing would cost the no-op path ~4 ms to import (records.py)
    from typing import List, Optional

    from .snapshot import Prescan


def main(argv: Optional[List[str]] = None) -> int:
    # Loading and planning make hundreds of thousands of long-lived objects and
    # no garbage cycles; the cyclic collector would rescan them all again and
    # again (a quarter of a 10,000-task run). The build loop turns it back on
    # for the objects it makes (build.py).
    gc.disable()
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # Answered before importing the CLI: scripts call this to probe for flowmake.
        from . import __version__

        print(f"flowmake {__version__}")
        return 0
    if not args or args[0] in ("run", "-f", "--file", "-C", "--directory") or args[0].startswith("--file=") \
            or args[0].startswith("--directory="):
        from .fastpath import parse, try_noop
        from .guard import exit_code_of

        prescans: List[Prescan] = []  # the no-op path's scan of changed files, for the full path
        code = exit_code_of(lambda: try_noop(args, hand_over=prescans))
        if code is not None:
            return code
        parsed = parse(args)
        try:
            if parsed is not None:
                # A well-formed `run` needs no typer (~15 ms to import); other
                # commands, --help and bad arguments go to the CLI below.
                from .commands import run_parsed

                code = exit_code_of(lambda: run_parsed(parsed, prescan=prescans[0] if prescans else None))
                return code if code is not None else 0
        finally:
            for prescan in prescans:
                prescan.close()
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
