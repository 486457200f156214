"""Reporters: turn the build loop's events into what the user sees.

The build loop never prints; it emits events (flowmake.events) to one
reporter chosen by `--progress`: `tree` (a live rich tree for terminals),
`plain` (one line per event, for CI logs) or `json` (one JSON object per
line, for scripts). Reporters see only events, never the state, the graph
or files. `make_reporter` is the one entry point; it imports only the module
it needs, because importing rich costs tens of milliseconds that the plain
and JSON modes should not pay.
"""

from __future__ import annotations

import os

from ..records import TYPE_CHECKING
from .common import no_color_env

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Mapping, Optional, Protocol, TextIO

    from ..events import Event

MODES = ("tree", "plain", "json")

if TYPE_CHECKING:  # what every reporter is; nothing checks it at run time

    class Reporter(Protocol):
        def handle(self, event: Event) -> None:
            """Take one event; called from the coordinator thread only."""

        def close(self) -> None:
            """Stop any live display and flush; safe to call twice, and after an error."""




def use_color(out: TextIO, color: Optional[bool], environ: Mapping[str, str] = os.environ) -> bool:
    """Colour when asked, or by default on a terminal; NO_COLOR wins over both."""
    if no_color_env(environ):
        return False
    if color is not None:
        return color
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def make_reporter(
    mode: str,
    *,
    out: TextIO,
    err: TextIO,
    color: Optional[bool] = None,
    quiet: bool = False,
    verbose: bool = False,
    output: str = "latest",
) -> Reporter:
    """The reporter for `mode` ("tree", "plain" or "json"; the CLI resolves "auto").

    `output` (commands.output_mode) says how task_lines events look: each
    line as `[task] line` when "prefixed", else as it is.
    """
    if mode == "json":
        from .jsonl import JsonReporter

        return JsonReporter(out=out, err=err)
    colored = use_color(out, color)
    # A quiet tree would be an empty live display: quiet output is a few
    # lines, and plain writes them without loading rich.
    if mode == "plain" or (mode == "tree" and quiet):
        from .plain import PlainReporter

        return PlainReporter(out=out, err=err, color=colored, quiet=quiet, verbose=verbose,
                             prefixed=output == "prefixed")
    if mode == "tree":
        from .front import TreeFront

        # rich is imported only once the run turns out to need the tree (front.py).
        return TreeFront(lambda: _tree(out=out, err=err, color=colored, verbose=verbose, prefixed=output == "prefixed"),
                         out=out, err=err, color=colored, verbose=verbose)
    raise ValueError(f"unknown progress mode {mode!r} (expected one of: {', '.join(MODES)})")


def _tree(*, out: TextIO, err: TextIO, color: bool, verbose: bool, prefixed: bool) -> Reporter:
    from rich.console import Console

    from .tree import TreeReporter

    console = Console(
        file=out,
        color_system="auto" if color else None,
        no_color=not color,
        highlight=False,
        markup=False,
        emoji=False,
    )
    return TreeReporter(console=console, err=err, verbose=verbose, prefixed=prefixed)
