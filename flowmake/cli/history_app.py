"""The commands that read what was recorded: log, lineage, report, audit verify|export (flowmake/history/).

They find the project's root without loading the Flowfile (`history_root`),
so they work when today's Flowfile does not load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .invocation import guarded, history_root, invocation
from .shorthand import HELP as SHORTHAND_HELP


@guarded
def log(
    run_id: Optional[str] = typer.Argument(None, help="A run id (or a unique prefix): show each task attempt of that run."),
    task: Optional[str] = typer.Argument(None, help="A task, matrix task (all its variants) or output path: print its log from that run (every attempt)."),
    last: bool = typer.Option(False, "--last", help="The newest run; `--last TASK`: TASK's log from the newest run in which it ran."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (documented in docs/json.md)."),
    limit: int = typer.Option(20, "--limit", help="How many recent runs to list."),
    prune: Optional[int] = typer.Option(None, "--prune", metavar="KEEP", help="Delete the log files of all but the newest KEEP runs (records stay)."),
    wait: bool = typer.Option(False, "--wait", help="With --prune: wait for a running flowmake instead of exiting 3."),
) -> int:
    """Recent runs; with a run id, every task attempt of that run; with a task too, its log. Reads only the state."""
    from ..history.log import prune_logs, show_log

    if prune is not None:
        return prune_logs(history_root(), prune, wait=wait)
    return show_log(history_root(), run_id, task, last=last, as_json=as_json, limit=limit)


@guarded
def lineage(
    path: str = typer.Argument(..., help="A file or directory output, relative to the project root or absolute inside it, e.g. dist/submission.zip."),
    as_json: bool = typer.Option(False, "--json", help="Print the lineage tree as JSON."),
    sources: bool = typer.Option(False, "--sources", help="Only the source files behind PATH, with their hashes."),
) -> int:
    """Which task and run produced PATH, from which inputs (with hashes), back to source files."""
    from ..history.lineage import show_lineage

    return show_lineage(history_root(), path, as_json=as_json, sources_only=sources)


REPORT_FORMATS = ("html", "md", "json")


@guarded
def report(
    run_id: Optional[str] = typer.Argument(None, help="A run id (or a unique prefix); default: the last run."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here (default: stdout; `-` is stdout too)."),
    fmt: str = typer.Option("html", "--format", help="html (one self-contained page) | md | json"),
    since: Optional[str] = typer.Option(None, "--since", metavar="DURATION", help="Every run started in this window, e.g. 7d, 12h."),
) -> int:
    """A run's report: graph, timeline, tasks, logs and lineage, from the state. Works when the Flowfile does not load."""
    if fmt not in REPORT_FORMATS:
        raise UsageError(f"unknown report format '{fmt}'", hint="use one of: " + ", ".join(REPORT_FORMATS))
    from ..runreport.command import write_report

    # -o is relative to where flowmake was started, not to -C's directory.
    target = output if output is None or str(output) == "-" else output.absolute()
    return write_report(history_root(), _report_project, run_id=run_id, since=since, fmt=fmt, output=target)


def _report_project():
    """Today's Flowfile, for the graph's shape only (-C was already entered by _history_root)."""
    from .commands import Project

    return Project.load(file=invocation.file, directory=None)


audit_app = typer.Typer(help="Check and export the tamper-evident audit trail.", no_args_is_help=True,
                        epilog=SHORTHAND_HELP)

EXPORT_FORMATS = ("json", "csv")


@audit_app.command("verify", epilog=SHORTHAND_HELP)
@guarded
def audit_verify() -> int:
    """Recompute the hash chain of every record; exit 1 naming the first bad one."""
    from ..history.audit import audit_verify as verify

    return verify(history_root())


@audit_app.command("export", epilog=SHORTHAND_HELP)
@guarded
def audit_export(
    fmt: str = typer.Option("json", "--format", help="json | csv"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
) -> int:
    """Write the whole audit trail (runs, attempts, hashes) for an auditor."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format '{fmt}'", hint="use one of: " + ", ".join(EXPORT_FORMATS))
    from ..history.audit import audit_export as export

    return export(history_root(), fmt=fmt, output=output)
