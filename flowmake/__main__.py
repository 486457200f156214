"""Entry point for the `flowmake` console script and `python -m flowmake`."""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        # Answered before importing the CLI: scripts call this to probe for flowmake.
        from . import __version__

        print(f"flowmake {__version__}")
        return 0
    if not args or args[0] in ("run", "-f", "--file", "-C", "--directory") or args[0].startswith("--file=") \
            or args[0].startswith("--directory="):
        from .fastpath import try_noop

        code = try_noop(args)
        if code is not None:
            return code
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
