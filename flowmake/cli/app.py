"""The command line: typer commands that wire the pieces together.

Thin by design: each command finds and loads the Flowfile, builds the graph,
opens the state and hands over to `build`, `commands` or a reporter. Errors
are rendered once, in `_guarded`: a `FlowError` becomes `error: ...` and its
exit code; anything else is a bug, reported in one line with the path of the
written traceback (exit 70).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer

from .. import __version__
from ..errors import EXIT_USAGE, UsageError
from .fastpath import PROGRESS_MODES
from .guard import exit_code_of
from .shorthand import HELP as SHORTHAND_HELP

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="flowmake: a make-like pipeline runner for data work. Run `flowmake run` in a project with a Flowfile.toml.",
    epilog=SHORTHAND_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., object])

GRAPH_FORMATS = ("text", "dot", "mermaid", "json")


class Globals:
    def __init__(self, file: Optional[Path], directory: Optional[Path]) -> None:
        self.file = file
        self.directory = directory
        self.typed: List[str] = sys.argv[1:]  # the arguments as given, for the run's record


_globals = Globals(None, None)


def _guarded(func: F) -> F:
    """Render user errors once; turn anything unexpected into exit 70 (guard.py)."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        code = exit_code_of(lambda: func(*args, **kwargs))  # type: ignore[arg-type, return-value]
        raise typer.Exit(code if code is not None else 0)

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        print(f"flowmake {__version__}")
        raise typer.Exit(0)


def _install_completion(value: bool) -> None:
    if value:
        from .completion import install

        raise typer.Exit(exit_code_of(lambda: install(None)) or 0)


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    file: Optional[Path] = typer.Option(None, "-f", "--file", help="Use this Flowfile instead of searching for Flowfile.toml (before or after the command)."),
    directory: Optional[Path] = typer.Option(None, "-C", "--directory", help="Change to this directory first (before or after the command)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    install_completion: bool = typer.Option(
        False, "--install-completion", callback=_install_completion, is_eager=True,
        help="Install completion (commands, options, task names) for the current shell ($SHELL) and exit."),
) -> None:
    """flowmake: bring data pipelines up to date, and prove what ran."""
    _globals.file = file
    _globals.directory = directory
    if ctx.invoked_subcommand is None:
        # Bare `flowmake` is `flowmake run` with its defaults.
        ctx.invoke(run, targets=None, jobs=None, dry_run=False, keep_going=False, always_make=False, force=None,
                   progress="auto", output=None, wait=False, quiet=False, verbose=False, junit_xml=None, ci="auto")


def _project():
    from .commands import Project

    return Project.load(file=_globals.file, directory=_globals.directory)


def _history_root() -> Path:
    """For the commands that read only the state: found without loading the Flowfile."""
    from .commands import history_root

    return history_root(file=_globals.file, directory=_globals.directory)


# -- run ---------------------------------------------------------------------


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def run(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks, matrix variants or output paths (default: [flow] default, else every task)."),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="Run N tasks at a time (default: flow.jobs, else the number of CPUs)."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Print what would run, why, and its command (secrets masked); run nothing."),
    keep_going: bool = typer.Option(False, "-k", "--keep-going", help="After a failure, keep running everything not downstream of it."),
    always_make: bool = typer.Option(False, "-B", "--always-make", help="Run every selected task, stale or not."),
    force: Optional[List[str]] = typer.Option(None, "--force", help="Run this task even if fresh (repeatable)."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json"),
    output: Optional[str] = typer.Option(
        None, "--output",
        help="What tasks print: prefixed (each line as \\[TASK] line) | interleaved | group (a block at its end) | "
             "none | auto (default: flow.output, else prefixed in plain logs, the latest line in the tree)."),
    wait: bool = typer.Option(False, "--wait", help="If another run holds the project, wait for it instead of exiting 3."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only failures and the final summary."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also list fresh tasks."),
    junit_xml: Optional[Path] = typer.Option(
        None, "--junit-xml", metavar="PATH",
        help="Also write the run as JUnit XML here (one test case per task; default: [flow] junit_xml)."),
    ci: str = typer.Option(
        "auto", "--ci",
        help="CI log output: auto (GitHub Actions or GitLab CI when their variables say so, never at a terminal) | "
             "github | gitlab | none"),
) -> int:
    """Bring the targets and what they need up to date."""
    from .commands import run_parsed
    from .fastpath import RunArgs, check

    # The RunArgs the fast path parses (fastpath.parse), checked and run the same way.
    args = RunArgs(file=_globals.file, directory=_globals.directory, targets=targets or [], jobs=jobs,
                   quiet=quiet, verbose=verbose, progress=progress, output=output, wait=wait, dry_run=dry_run,
                   keep_going=keep_going, always_make=always_make, force=force or [], argv=_globals.typed, ci=ci,
                   junit_xml=str(junit_xml) if junit_xml is not None else None)
    check(args)
    return run_parsed(args)


# -- inspection ---------------------------------------------------------------


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def status(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks to show in full (default: every task, one line each)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {task, state, reasons}."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when anything is stale or blocked (for CI gates)."),
) -> int:
    """Each task: fresh, stale (with reasons) or blocked behind a stale task."""
    from .commands import show_status

    return show_status(_project(), targets or [], as_json=as_json, exit_code=exit_code)


@app.command("list", epilog=SHORTHAND_HELP)
@_guarded
def list_tasks(
    as_json: bool = typer.Option(False, "--json", help="Print every task and variant as JSON (docs/json.md)."),
) -> int:
    """The tasks, with their help text."""
    from .listings import show_list

    return show_list(_project(), as_json=as_json)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def graph(
    targets: Optional[List[str]] = typer.Argument(None, help="Only these targets and what they need."),
    fmt: str = typer.Option("text", "--format", help="text | dot | mermaid | json"),
) -> int:
    """The dependency graph; edges point from a task to the tasks that depend on it."""
    if fmt not in GRAPH_FORMATS:
        raise UsageError(f"unknown graph format '{fmt}'", hint="use one of: " + ", ".join(GRAPH_FORMATS))
    from .listings import show_graph

    return show_graph(_project(), targets or [], fmt=fmt)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def clean(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks whose outputs to delete (default: every task)."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Print what would be deleted; delete nothing."),
    wait: bool = typer.Option(False, "--wait", help="Wait for a running flowmake instead of exiting 3."),
) -> int:
    """Delete the declared outputs of tasks (never anything else) and forget their records."""
    from .commands import clean_outputs

    return clean_outputs(_project(), targets or [], dry_run=dry_run, wait=wait)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def check() -> int:
    """Load and validate the Flowfile; print every problem; run nothing."""
    from .commands import check_flowfile

    return check_flowfile(file=_globals.file, directory=_globals.directory)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def init(force: bool = typer.Option(False, "--force", help="Overwrite an existing Flowfile.toml.")) -> int:
    """Write a starter Flowfile.toml in the current directory."""
    from .commands import write_starter

    return write_starter(directory=_globals.directory, overwrite=force)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def completion(
    shell: str = typer.Argument(..., help="bash | zsh | fish"),
    install: bool = typer.Option(False, "--install", help="Write it where the shell finds completions, instead of printing it."),
) -> int:
    """Print the shell completion script: commands, options, and the Flowfile's tasks, variants and outputs."""
    from .completion import install as install_script, script

    if install:
        script(shell)  # an unknown shell is exit 2 before anything is written
        return install_script(shell)
    sys.stdout.write(script(shell))
    return 0


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def schema(
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write it to this file instead of stdout."),
) -> int:
    """Print the JSON Schema of the Flowfile, for editors (docs/flowfile.md#editor-support)."""
    from .commands import print_schema

    return print_schema(output=output)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
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
        return prune_logs(_history_root(), prune, wait=wait)
    return show_log(_history_root(), run_id, task, last=last, as_json=as_json, limit=limit)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def lineage(
    path: str = typer.Argument(..., help="A file or directory output, relative to the project root or absolute inside it, e.g. dist/submission.zip."),
    as_json: bool = typer.Option(False, "--json", help="Print the lineage tree as JSON."),
    sources: bool = typer.Option(False, "--sources", help="Only the source files behind PATH, with their hashes."),
) -> int:
    """Which task and run produced PATH, from which inputs (with hashes), back to source files."""
    from ..history.lineage import show_lineage

    return show_lineage(_history_root(), path, as_json=as_json, sources_only=sources)


REPORT_FORMATS = ("html", "md", "json")


@app.command(epilog=SHORTHAND_HELP)
@_guarded
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
    return write_report(_history_root(), _report_project, run_id=run_id, since=since, fmt=fmt, output=target)


def _report_project():
    """Today's Flowfile, for the graph's shape only (-C was already entered by _history_root)."""
    from .commands import Project

    return Project.load(file=_globals.file, directory=None)


audit_app = typer.Typer(help="Check and export the tamper-evident audit trail.", no_args_is_help=True,
                        epilog=SHORTHAND_HELP)
app.add_typer(audit_app, name="audit")

EXPORT_FORMATS = ("json", "csv")


@audit_app.command("verify", epilog=SHORTHAND_HELP)
@_guarded
def audit_verify() -> int:
    """Recompute the hash chain of every record; exit 1 naming the first bad one."""
    from ..history.audit import audit_verify as verify

    return verify(_history_root())


@audit_app.command("export", epilog=SHORTHAND_HELP)
@_guarded
def audit_export(
    fmt: str = typer.Option("json", "--format", help="json | csv"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
) -> int:
    """Write the whole audit trail (runs, attempts, hashes) for an auditor."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format '{fmt}'", hint="use one of: " + ", ".join(EXPORT_FORMATS))
    from ..history.audit import audit_export as export

    return export(_history_root(), fmt=fmt, output=output)


@app.command(epilog=SHORTHAND_HELP)
@_guarded
def watch(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks, matrix variants or output paths (default: as `run`)."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json, for each run"),
    debounce: int = typer.Option(1600, "--debounce", metavar="MS",
                                 help="Gather changes for up to this many milliseconds into one run."),
) -> int:
    """Run the targets, then again whenever one of their source files or the Flowfile changes; Ctrl-C stops."""
    if progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    if debounce < 0:
        raise UsageError(f"--debounce must be 0 or more milliseconds, got {debounce}")
    from .unattended import run_watch

    project = _project()
    return run_watch(project.flowfile.path, project.root, targets or [], progress=progress, debounce_ms=debounce,
                     argv=_globals.typed)


schedule_app = typer.Typer(help="Unattended runs: the Flowfile's [schedules], run by flowmake or exported to cron or "
                                  "systemd (docs/schedules.md).", no_args_is_help=True, epilog=SHORTHAND_HELP)
app.add_typer(schedule_app, name="schedule")
EXPORT_TARGETS = ("crontab", "systemd")


@schedule_app.command("list", epilog=SHORTHAND_HELP)
@_guarded
def schedule_list(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (docs/schedules.md)."),
    start: Optional[str] = typer.Option(None, "--from", metavar="TIME",
                                        help="Fire times after this ISO 8601 time (default: now; without an offset, "
                                             "in each schedule's time zone)."),
) -> int:
    """Each schedule with its next five fire times and how its last slot went."""
    from .unattended import list_schedules

    return list_schedules(_project(), as_json=as_json, start=start)


@schedule_app.command("run", epilog=SHORTHAND_HELP)
@_guarded
def schedule_run(
    names: Optional[List[str]] = typer.Argument(None, help="Only these schedules (default: all)."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json, for each run"),
) -> int:
    """Run each schedule's targets when due, in the foreground (for a systemd service or a container)."""
    if progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    from .unattended import run_scheduler

    return run_scheduler(_project(), names or [], progress=progress, argv=_globals.typed)


@schedule_app.command("fire", epilog=SHORTHAND_HELP)
@_guarded
def schedule_fire(
    name: str = typer.Argument(..., help="The schedule whose latest slot to run now."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json"),
) -> int:
    """Run one schedule's targets now, recorded as its latest slot (what exported cron and systemd entries call)."""
    if progress not in PROGRESS_MODES:
        raise UsageError(f"unknown --progress mode '{progress}'", hint="use one of: " + ", ".join(PROGRESS_MODES))
    from .unattended import fire_schedule

    return fire_schedule(_project(), name, progress=progress, argv=_globals.typed)


@schedule_app.command("export", epilog=SHORTHAND_HELP)
@_guarded
def schedule_export(
    names: Optional[List[str]] = typer.Argument(None, help="Only these schedules (default: all)."),
    fmt: str = typer.Option(..., "--format", help="crontab | systemd"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="crontab: write this file; systemd: write the units into this "
                                               "directory (default: print them)."),
) -> int:
    """Print ready-to-install crontab lines or systemd timer and service units for the schedules."""
    if fmt not in EXPORT_TARGETS:
        raise UsageError(f"unknown export format '{fmt}'", hint="use one of: " + ", ".join(EXPORT_TARGETS))
    from .unattended import export_schedules

    target = output if output is None else output.absolute()
    return export_schedules(_project(), names or [], fmt=fmt, output=target)


cache_app = typer.Typer(help="The shared output cache (docs/cache.md): what it holds, and trimming it.",
                        no_args_is_help=True, epilog=SHORTHAND_HELP)
app.add_typer(cache_app, name="cache")
CACHE_HELP = "The cache: a directory or URL (default: FLOWMAKE_CACHE, else [flow] cache)."


@cache_app.command("stats", epilog=SHORTHAND_HELP)
@_guarded
def cache_stats(
    cache: Optional[str] = typer.Option(None, "--cache", metavar="URL", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Entries, blobs and bytes in the cache, and the hit rate of the recent runs that used it."""
    from .cachecmd import cache_stats as stats

    return stats(cache, file=_globals.file, directory=_globals.directory, as_json=as_json)


@cache_app.command("gc", epilog=SHORTHAND_HELP)
@_guarded
def cache_gc(
    max_size: Optional[str] = typer.Option(None, "--max-size", metavar="SIZE", help="Trim to this size, least recently used first, e.g. 10GB."),
    older_than: Optional[str] = typer.Option(None, "--older-than", metavar="AGE", help="Remove entries not used for this long, e.g. 30d."),
    cache: Optional[str] = typer.Option(None, "--cache", metavar="URL", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Remove entries least recently used first, then the blobs no entry names (safe beside running writers)."""
    from .cachecmd import cache_gc as collect

    return collect(cache, file=_globals.file, directory=_globals.directory, max_size=max_size,
                   older_than=older_than, as_json=as_json)


def main(argv: Optional[List[str]] = None, *, typed: Optional[List[str]] = None) -> int:
    """`argv` as shorthand.expand made it (expanded here when not); `typed`, as given, is what a run records."""
    from .shorthand import expand

    given = sys.argv[1:] if argv is None else argv
    _globals.typed = list(given if typed is None else typed)
    try:
        app(args=expand(given), prog_name="flowmake")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    return 0
