"""`flowmake daemon start|stop|status`: the opt-in resident watcher (docs/daemon.md); thin over daemon/control.py."""

from __future__ import annotations

from typing import Optional

import typer

from .invocation import guarded, invocation
from .shorthand import HELP as SHORTHAND_HELP

daemon_app = typer.Typer(help="A resident watcher that answers a `flowmake run` with nothing to do at once "
                              "(opt-in, Linux; docs/daemon.md).", no_args_is_help=True, epilog=SHORTHAND_HELP)


@daemon_app.command("start", epilog=SHORTHAND_HELP)
@guarded
def daemon_start(
    idle_exit: Optional[str] = typer.Option(None, "--idle-exit", metavar="DURATION",
                                            help="End after this long without a run, e.g. 30m (default: "
                                                 "FLOWMAKE_DAEMON_IDLE seconds, else 3h)."),
) -> int:
    """Start the watcher for this project (or -C / -f), in the background."""
    from ..daemon.control import start
    from ..load.durations import parse_duration

    idle = parse_duration(idle_exit, what="--idle-exit") if idle_exit is not None else None
    return start(invocation.file, invocation.directory, idle)


@daemon_app.command("status", epilog=SHORTHAND_HELP)
@guarded
def daemon_status() -> int:
    """Whether a watcher runs for this project and answers; exit 1 when none runs."""
    from ..daemon.control import status

    return status(invocation.file, invocation.directory)


@daemon_app.command("stop", epilog=SHORTHAND_HELP)
@guarded
def daemon_stop() -> int:
    """Stop this project's watcher (nothing to do when none runs)."""
    from ..daemon.control import stop

    return stop(invocation.file, invocation.directory)
